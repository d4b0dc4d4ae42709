/**
 * The workflow page (a main-area tab, opened by clicking a workflow in the
 * sidebar): its definition drawn, its revisions (click one to draw that
 * revision), its parameters and schedule when it has them, and the history
 * grid: one column per execution, oldest on the left, one cell per task
 * coloured by status (click a cell for that task's attempts and logs in its
 * execution, a column's head for the execution), paged back through history
 * `GRID_PAGE` executions at a time (the `X-Next-Cursor` of GET /executions).
 * Ticking two columns' boxes compares those executions.
 *
 * Live through the shared model: the pages read are merged into it, and the
 * grid shows every execution of the workflow it holds that is not older
 * than the oldest page (`grid.ts`), so a run started anywhere appears on the
 * right as it starts and its cells change colour as its tasks run.
 */

import { Widget } from '@lumino/widgets';

import * as api from './api';
import { DagLayout, layoutDag } from './dag';
import {
  describeError,
  formatDuration,
  formatTime,
  h,
  nextRunSpan,
  s,
  tickElapsed,
  tickNextRun
} from './dom';
import { dagSvg, newMarkerId, truncate } from './graph';
import {
  cellIndex,
  comparePair,
  gridColumns,
  gridRows,
  pick,
  timeKey
} from './grid';
import { taskflowIcon } from './icon';
import {
  countsText,
  Execution,
  plural,
  scheduleState,
  taskCounts,
  TaskRun,
  TERMINAL_EXECUTION,
  Workflow,
  WorkflowRevision
} from './model';
import { TaskflowService } from './service';

/** Executions read per page of the grid. */
export const GRID_PAGE = 20;

export interface WorkflowActions {
  openExecution(id: string, task?: string): void;
  compare(a: string, b: string): void;
  runWorkflow(id: string): Promise<void>;
}

export class WorkflowView extends Widget {
  constructor(
    readonly workflowId: string,
    private readonly service: TaskflowService,
    private readonly actions: WorkflowActions
  ) {
    super();
    this.addClass('jp-TaskflowWorkflow');
    this.title.icon = taskflowIcon;
    this.title.label = workflowId;
    this.title.caption = `Workflow ${workflowId}`;
    this._unsubscribe = service.model.subscribe(() => this._schedule());
    this.node.append(
      this._headerBox,
      this._infoBox,
      this._graphBox,
      this._gridBox,
      this._revisionsBox
    );
    this._render();
    void this.reload();
    this._timer = window.setInterval(() => {
      tickElapsed(this.node);
      tickNextRun(this.node);
    }, 1000);
  }

  dispose(): void {
    this._unsubscribe();
    window.clearInterval(this._timer);
    if (this._frame !== null) {
      cancelAnimationFrame(this._frame);
    }
    super.dispose();
  }

  /** Read the definition, its revisions and the newest page of executions. */
  async reload(): Promise<void> {
    const settings = this.service.settings;
    try {
      const [wf, revisions, page] = await Promise.all([
        api.getWorkflow(this.workflowId, undefined, settings),
        api.listRevisions(this.workflowId, settings),
        api.listExecutionPage(
          { workflow_id: this.workflowId, limit: GRID_PAGE },
          settings
        )
      ]);
      this.service.model.upsertWorkflow(wf);
      this._revisions = revisions;
      this._latest = wf;
      if (this._shown === null || this._shown.revision === wf.revision) {
        this._shown = wf;
      }
      this._takePage(page, true);
      this._error = null;
    } catch (err) {
      this._error = describeError(err);
    }
    this._loaded = true;
    this._render();
  }

  private _takePage(page: api.ExecutionPage, first: boolean): void {
    const oldest = page.executions[page.executions.length - 1];
    if (first || oldest) {
      this._since = page.nextCursor && oldest ? timeKey(oldest) : '';
    }
    this._cursor = page.nextCursor;
    this.service.model.upsertExecutions(page.executions);
  }

  private async _older(): Promise<void> {
    if (!this._cursor || this._loadingOlder) {
      return;
    }
    this._loadingOlder = true;
    this._render();
    try {
      const page = await api.listExecutionPage(
        {
          workflow_id: this.workflowId,
          limit: GRID_PAGE,
          cursor: this._cursor
        },
        this.service.settings
      );
      this._takePage(page, false);
      this._shiftOnOlder = true;
      this._gridError = null;
    } catch (err) {
      this._gridError = `Cannot read older executions: ${describeError(err)}`;
    } finally {
      this._loadingOlder = false;
      this._render();
    }
  }

  private async _showRevision(revision: number): Promise<void> {
    if (this._shown?.revision === revision) {
      return;
    }
    try {
      this._shown =
        revision === this._latest?.revision
          ? this._latest
          : await api.getWorkflow(
              this.workflowId,
              revision,
              this.service.settings
            );
      this._error = null;
    } catch (err) {
      this._error = `Cannot read revision ${revision}: ${describeError(err)}`;
    }
    this._render();
  }

  private _schedule(): void {
    if (this._frame === null) {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._render();
      });
    }
  }

  private _render(): void {
    const wf = this.service.model.workflow(this.workflowId) ?? this._latest;
    if (wf) {
      this.title.label = wf.name || wf.id;
    }
    if (!this._loaded && !wf) {
      this._headerBox.replaceChildren(
        h(
          'div',
          { class: 'jp-Taskflow-loading' },
          `Loading ${this.workflowId}…`
        )
      );
      return;
    }
    this._headerBox.replaceChildren(this._header(wf));
    // the latest revision as the panel's model has it now (paused, next run), unless
    // an older revision was picked
    const older = this._shown && wf && this._shown.revision !== wf.revision;
    const shown = (older ? this._shown : (wf ?? this._shown)) ?? null;
    this._infoBox.replaceChildren(...(shown ? this._info(shown) : []));
    this._drawGraph(shown);
    this._gridBox.replaceChildren(this._grid(shown));
    this._afterGrid?.();
    this._afterGrid = null;
    this._revisionsBox.replaceChildren(this._revisionList());
  }

  private _header(wf: Workflow | null | undefined): HTMLElement {
    const run = h(
      'button',
      {
        class: 'jp-mod-styled jp-Taskflow-action',
        'data-action': 'run',
        title: 'Start a new execution of this workflow',
        disabled: !wf
      },
      'Run'
    );
    run.onclick = () => {
      run.disabled = true;
      this.actions
        .runWorkflow(this.workflowId)
        .catch(err => (this._error = `Run failed: ${describeError(err)}`))
        .finally(() => this._render());
    };
    const refresh = h(
      'button',
      { class: 'jp-mod-styled jp-Taskflow-action', 'data-action': 'refresh' },
      'Refresh'
    );
    refresh.onclick = () => void this.reload();
    return h(
      'div',
      {},
      h(
        'div',
        { class: 'jp-TaskflowExecution-header' },
        h(
          'div',
          { class: 'jp-TaskflowExecution-title' },
          h('h2', {}, wf?.name || this.workflowId),
          h(
            'span',
            { class: 'jp-TaskflowPanel-meta' },
            [
              this.workflowId,
              wf ? plural(wf.tasks.length, 'task') : '',
              wf?.revision ? `rev ${wf.revision}` : '',
              wf?.owner ? `owner ${wf.owner}` : ''
            ]
              .filter(Boolean)
              .join(' · ')
          )
        ),
        h('div', { class: 'jp-TaskflowExecution-actions' }, run, refresh)
      ),
      wf?.description
        ? h('p', { class: 'jp-TaskflowWorkflow-description' }, wf.description)
        : null,
      this._error
        ? h('div', { class: 'jp-Taskflow-error', role: 'alert' }, this._error)
        : null
    );
  }

  /** The shown revision's parameters and schedule, when it has them. */
  private _info(wf: Workflow): HTMLElement[] {
    const out: HTMLElement[] = [];
    const params = Object.entries(wf.parameters ?? {});
    if (params.length) {
      out.push(
        h(
          'section',
          { class: 'jp-TaskflowWorkflow-parameters' },
          h('h3', {}, 'Parameters'),
          h(
            'table',
            { class: 'jp-TaskflowExecution-attempts' },
            h(
              'thead',
              {},
              h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Default'))
            ),
            h(
              'tbody',
              {},
              ...params.map(([name, value]) =>
                h(
                  'tr',
                  { 'data-param': name },
                  h('td', {}, name),
                  h('td', {}, h('code', {}, JSON.stringify(value)))
                )
              )
            )
          )
        )
      );
    }
    const sched = scheduleState(wf);
    if (sched) {
      out.push(
        h(
          'section',
          {
            class: 'jp-TaskflowWorkflow-schedule',
            'data-paused': sched.paused ? 'true' : 'false'
          },
          h('h3', {}, 'Schedule'),
          h(
            'p',
            {},
            sched.words,
            sched.paused
              ? h('span', { class: 'jp-TaskflowPanel-paused' }, ' paused')
              : null,
            !sched.paused && wf.nextRunTime ? ' · ' : '',
            !sched.paused && wf.nextRunTime ? nextRunSpan(wf.nextRunTime) : null
          )
        )
      );
    }
    return out;
  }

  private _drawGraph(wf: Workflow | null): void {
    if (!wf) {
      this._graphBox.replaceChildren();
      return;
    }
    const key = `${wf.revision}:${JSON.stringify(
      wf.tasks.map(t => [t.name, t.dependencies ?? []])
    )}`;
    if (this._graph?.key === key) {
      return;
    }
    const layout: DagLayout = layoutDag(wf.tasks);
    const svg = dagSvg(layout, this._markerId, `Definition of ${wf.id}`);
    const W = layout.nodes[0]?.width ?? 140;
    const H = layout.nodes[0]?.height ?? 36;
    const types = new Map(wf.tasks.map(t => [t.name, t.type ?? 'python']));
    for (const n of layout.nodes) {
      svg.appendChild(
        s(
          'g',
          {
            class: 'jp-TaskflowDag-node jp-mod-definition',
            'data-task': n.name,
            transform: `translate(${n.x},${n.y})`
          },
          s('title', {}, `${n.name} (${types.get(n.name)})`),
          s('rect', { width: W, height: H, rx: 6 }),
          s(
            'text',
            { x: 10, y: 15, class: 'jp-TaskflowDag-label' },
            truncate(n.name, 18)
          ),
          s(
            'text',
            { x: 10, y: 29, class: 'jp-TaskflowDag-sub' },
            types.get(n.name) ?? ''
          )
        )
      );
    }
    this._graph = { key };
    this._graphBox.replaceChildren(
      h('h3', {}, `Definition (rev ${wf.revision})`),
      h('div', { class: 'jp-TaskflowExecution-graph' }, svg as unknown as Node)
    );
  }

  /** Runs x tasks: a column per execution, a cell per task by status. */
  private _grid(wf: Workflow | null): HTMLElement {
    const columns = gridColumns(
      this.service.model.recentExecutions(Infinity),
      this.workflowId,
      this._since
    );
    const latest = this.service.model.workflow(this.workflowId) ?? wf;
    const rows = gridRows(
      (latest?.tasks ?? []).map(t => t.name),
      columns
    );
    const cells = cellIndex(columns);
    const pair = comparePair(this._picked, columns);
    const compare = h(
      'button',
      {
        class: 'jp-mod-styled jp-Taskflow-action',
        'data-action': 'compare',
        disabled: !pair,
        title: pair
          ? `Compare ${pair[0]} with ${pair[1]}`
          : 'Tick two executions to compare them'
      },
      'Compare'
    );
    compare.onclick = () => pair && this.actions.compare(pair[0], pair[1]);
    const older = h(
      'button',
      {
        class: 'jp-mod-styled jp-TaskflowWorkflow-older',
        'data-action': 'older',
        disabled: this._loadingOlder,
        title: `Read the ${GRID_PAGE} executions before these`
      },
      this._loadingOlder ? 'Loading…' : `◀ ${GRID_PAGE} older`
    );
    older.onclick = () => void this._older();
    const head = h(
      'tr',
      {},
      h('th', { class: 'jp-TaskflowGrid-corner' }, this._cursor ? older : ''),
      ...columns.map(e => this._columnHead(e))
    );
    const body = rows.map(name =>
      h(
        'tr',
        { 'data-task': name },
        h('th', { class: 'jp-TaskflowGrid-task', title: name }, name),
        ...columns.map((e, i) => this._cell(e, name, cells[i].get(name)))
      )
    );
    const table = h(
      'table',
      { class: 'jp-TaskflowGrid', 'data-columns': columns.length },
      h('thead', {}, head),
      h('tbody', {}, ...body)
    );
    const scroller = h('div', { class: 'jp-TaskflowGrid-scroller' }, table);
    // Newest on the right: keep it in view unless the user scrolled away.
    const prev = this._gridBox.querySelector('.jp-TaskflowGrid-scroller');
    const atEnd =
      !prev || prev.scrollLeft + prev.clientWidth >= prev.scrollWidth - 8;
    const keep = prev?.scrollLeft ?? 0;
    const grown = this._shiftOnOlder;
    this._shiftOnOlder = false;
    // Older columns came in on the left: show them, from where they start.
    this._afterGrid = () =>
      (scroller.scrollLeft = grown ? 0 : atEnd ? scroller.scrollWidth : keep);
    return h(
      'section',
      { class: 'jp-TaskflowWorkflow-history' },
      h(
        'div',
        { class: 'jp-TaskflowWorkflow-historyHead' },
        h(
          'h3',
          {},
          `History (${plural(columns.length, 'execution')}${this._cursor ? ', more before' : ''})`
        ),
        compare
      ),
      this._gridError
        ? h(
            'div',
            { class: 'jp-Taskflow-error', role: 'alert' },
            this._gridError
          )
        : null,
      columns.length
        ? scroller
        : h(
            'p',
            { class: 'jp-Taskflow-empty' },
            this._loaded ? 'No executions yet.' : 'Loading executions…'
          )
    );
  }

  private _columnHead(e: Execution): HTMLElement {
    const counts = taskCounts(e);
    const text = countsText(counts);
    const box = h('input', {
      type: 'checkbox',
      'data-compare': e.id,
      title: 'Compare this execution',
      'aria-label': `Compare ${e.id}`,
      checked: this._picked.includes(e.id)
    });
    box.onclick = ev => ev.stopPropagation();
    box.onchange = () => {
      this._picked = pick(this._picked, e.id);
      this._render();
    };
    const open = h(
      'button',
      {
        class: `jp-TaskflowGrid-run jp-Taskflow-status-${e.status}`,
        'data-execution-id': e.id,
        'data-status': e.status,
        title: `${e.id} · ${e.status} · ${text}\nstarted ${formatTime(e.startTime ?? e.createdAt)}${
          TERMINAL_EXECUTION.has(e.status) && e.startTime
            ? ` · ${formatDuration(
                (Date.parse(e.endTime ?? e.startTime) -
                  Date.parse(e.startTime)) /
                  1000
              )}`
            : ''
        }`
      },
      ''
    );
    open.onclick = () => this.actions.openExecution(e.id);
    return h(
      'th',
      {
        class: 'jp-TaskflowGrid-head',
        'data-execution-id': e.id,
        'data-status': e.status
      },
      open,
      box
    );
  }

  private _cell(
    e: Execution,
    task: string,
    t: TaskRun | undefined
  ): HTMLElement {
    if (!t) {
      return h('td', { class: 'jp-TaskflowGrid-cell jp-mod-absent' });
    }
    const reused = t.reusedFrom ? ` · reused from ${t.reusedFrom}` : '';
    const button = h('button', {
      class: `jp-TaskflowGrid-square jp-Taskflow-status-${t.status}${t.reusedFrom ? ' jp-mod-reused' : ''}`,
      'data-status': t.status,
      title: `${task} · ${t.status}${
        t.attempts ? ` · ${plural(t.attempts, 'attempt')}` : ''
      }${t.duration !== null && t.duration !== undefined ? ` · ${formatDuration(t.duration)}` : ''}${reused}\n${e.id}${
        t.error ? `\n${t.error}` : ''
      }`
    });
    button.onclick = () => this.actions.openExecution(e.id, task);
    return h(
      'td',
      {
        class: 'jp-TaskflowGrid-cell',
        'data-execution-id': e.id,
        'data-task': task,
        'data-status': t.status
      },
      button
    );
  }

  private _revisionList(): HTMLElement {
    const revisions = this._revisions ?? [];
    const shown = this._shown?.revision;
    return h(
      'section',
      { class: 'jp-TaskflowWorkflow-revisions' },
      h('h3', {}, `Revisions (${revisions.length})`),
      h(
        'ul',
        { class: 'jp-TaskflowPanel-list' },
        ...revisions.map(r => {
          const li = h(
            'li',
            {
              class: `jp-TaskflowWorkflow-revision${r.revision === shown ? ' jp-mod-selected' : ''}`,
              'data-revision': r.revision,
              tabindex: 0,
              title: `Draw revision ${r.revision}`
            },
            h('span', { class: 'jp-TaskflowPanel-name' }, `rev ${r.revision}`),
            h(
              'span',
              { class: 'jp-TaskflowPanel-meta' },
              [
                formatTime(r.createdAt),
                plural(r.tasks, 'task'),
                r.schedule ? scheduleWords(r.schedule) : ''
              ]
                .filter(Boolean)
                .join(' · ')
            )
          );
          li.onclick = () => void this._showRevision(r.revision);
          li.onkeydown = ev => {
            if (ev.key === 'Enter' || ev.key === ' ') {
              ev.preventDefault();
              void this._showRevision(r.revision);
            }
          };
          return li;
        })
      )
    );
  }

  private _unsubscribe: () => void;
  private _timer: number;
  private _frame: number | null = null;
  private _markerId = newMarkerId();
  private _headerBox = h('div');
  private _infoBox = h('div', { class: 'jp-TaskflowWorkflow-info' });
  private _graphBox = h('div');
  private _gridBox = h('div');
  private _revisionsBox = h('div');
  private _graph: { key: string } | null = null;
  private _loaded = false;
  private _error: string | null = null;
  private _gridError: string | null = null;
  private _latest: Workflow | null = null;
  private _shown: Workflow | null = null;
  private _revisions: WorkflowRevision[] | null = null;
  /** The oldest execution a page brought ('' once there is no page before). */
  private _since = '';
  private _cursor: string | null = null;
  private _loadingOlder = false;
  private _shiftOnOlder = false;
  private _picked: string[] = [];
  private _afterGrid: (() => void) | null = null;
}

/** A revision's schedule in a few words (no server text for old revisions). */
function scheduleWords(s: NonNullable<WorkflowRevision['schedule']>): string {
  return s.cron
    ? `cron ${s.cron}`
    : `every ${plural(Number(s.every ?? 0), 'second')}`;
}
