/**
 * The TaskFlow sidebar: registered workflows (with a Run action, and Run with
 * parameters for those that declare parameters; a scheduled one shows its
 * schedule in words, its next run counting down or "paused", a pause/resume
 * toggle, and a banner when slots were missed while no server ran) and
 * recent executions with status badges (and a "scheduled" or "retry" one),
 * re-rendered from the shared model whenever a /ws event or a REST snapshot
 * changes it.
 */

import { Widget } from '@lumino/widgets';

import {
  badge,
  describeError,
  formatTime,
  h,
  icon,
  morph,
  nextRunSpan,
  patchChildren,
  runTime,
  statusBar,
  tickElapsed,
  tickNextRun,
  triggerBadge
} from './dom';
import { taskflowIcon } from './icon';
import { Throttle } from './mapped';
import {
  countsText,
  Execution,
  missedSlotsKey,
  missedSlotsText,
  plural,
  scheduleState,
  taskCounts,
  TERMINAL_EXECUTION,
  Workflow
} from './model';

/** Workflows listed before "show more", and how many more each click shows. */
const WORKFLOW_FIRST = 10;
const WORKFLOW_PAGE = 20;
/** Fewer workflows than this need no filter box. */
const FILTER_FROM = 6;
/** The least time between two live redraws of the sidebar. */
const PANEL_RENDER_MS = 200;
import { TaskflowService } from './service';

export interface PanelActions {
  openExecution(id: string): void;
  /** The workflow page: definition, revisions, history grid. */
  openWorkflow(id: string): void;
  runWorkflow(id: string): Promise<void>;
  /** Ask for the declared parameters' values, then run. */
  runWithParameters(id: string): Promise<unknown>;
}

export class TaskflowPanel extends Widget {
  constructor(
    private readonly service: TaskflowService,
    private readonly actions: PanelActions
  ) {
    super();
    this.id = 'taskflow-panel';
    this.addClass('jp-TaskflowPanel');
    this.title.icon = taskflowIcon;
    this.title.caption = 'TaskFlow';
    this._unsubscribe = [
      service.model.subscribe(() => this._renders.request()),
      service.onStateChanged(() => this._renders.request())
    ];
    this._filter = h('input', {
      type: 'search',
      class: 'jp-mod-styled jp-TaskflowPanel-filter',
      placeholder: 'Filter workflows',
      'aria-label': 'Filter workflows'
    });
    this._filter.oninput = () => {
      this._limit = WORKFLOW_FIRST;
      this._render();
    };
    this._wfSection = h(
      'section',
      { class: 'jp-TaskflowPanel-workflowsSection' },
      this._wfTitle,
      this._filter,
      this._wfContent,
      this._more
    );
    this._more.onclick = () => {
      this._limit += WORKFLOW_PAGE;
      this._render();
    };
    this._render();
    // Running executions' elapsed times and next-run countdowns tick
    // without a re-render.
    this._timer = window.setInterval(() => {
      tickElapsed(this.node);
      tickNextRun(this.node);
      this._reloadOverdue();
    }, 1000);
  }

  dispose(): void {
    this._unsubscribe.forEach(fn => fn());
    this._renders.dispose();
    window.clearInterval(this._timer);
    super.dispose();
  }

  protected onAfterAttach(): void {
    this.service.start();
    this._render();
  }

  /**
   * A next run well in the past means the slot fired (perhaps on another
   * server sharing the database, whose events this one does not send):
   * re-read that workflow, once per next-run value.
   */
  private _reloadOverdue(): void {
    const now = Date.now();
    for (const wf of this.service.model.workflows) {
      if (!wf.schedule || wf.paused || !wf.nextRunTime) {
        continue;
      }
      const key = `${wf.id}@${wf.nextRunTime}`;
      const due = new Date(wf.nextRunTime).getTime();
      if (now - due > 5000 && !this._overdueAsked.has(key)) {
        this._overdueAsked.add(key);
        void this.service.reloadWorkflow(wf.id);
      }
    }
  }

  private _scheduleRender(): void {
    if (this._frame === null) {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._render();
      });
    }
  }

  private _render(): void {
    const { loading, error, stream } = this.service.state;
    const refresh = h(
      'button',
      {
        class: 'jp-Taskflow-iconButton',
        title: 'Refresh',
        'data-action': 'refresh'
      },
      '⟳'
    );
    refresh.onclick = () => void this.service.refresh();
    const header = h(
      'div',
      { class: 'jp-TaskflowPanel-header' },
      h('h2', {}, 'TaskFlow'),
      h(
        'span',
        {
          class: `jp-TaskflowPanel-live jp-mod-${stream}`,
          title:
            stream === 'open'
              ? 'Live: receiving events from /ws'
              : `Event stream ${stream}; reconnecting resumes where it left off`
        },
        stream === 'open' ? '● live' : `○ ${stream}`
      ),
      refresh
    );
    // The body and the workflows section persist across renders: detaching
    // the focused filter box would move JupyterLab's focus elsewhere.
    const top = h('div');
    if (error) {
      const retry = h(
        'button',
        { class: 'jp-mod-styled jp-mod-accept' },
        'Try again'
      );
      retry.onclick = () => void this.service.refresh();
      top.appendChild(
        h(
          'div',
          { class: 'jp-Taskflow-error', role: 'alert' },
          h('p', {}, `Cannot reach the TaskFlow API: ${error}`),
          h(
            'p',
            { class: 'jp-Taskflow-hint' },
            'Is the pytaskflow_jupyter server extension enabled? See `jupyter server extension list`.'
          ),
          retry
        )
      );
    }
    if (loading) {
      top.appendChild(h('div', { class: 'jp-Taskflow-loading' }, 'Loading…'));
    } else {
      this._updateWorkflowsSection();
    }
    this._wfSection.hidden = loading;
    // Re-rendering replaces the rows: keep keyboard focus on the same one.
    const active = document.activeElement;
    const focused =
      active && this.node.contains(active)
        ? active.getAttribute('data-execution-id')
        : null;
    if (!this._body.isConnected) {
      this.node.replaceChildren(header, this._body);
      this._body.append(this._top, this._wfSection, this._execSection);
    } else if (this.node.firstElementChild) {
      morph(this.node.firstElementChild, header);
    }
    // Patched, not replaced: a busy run re-renders the panel every frame,
    // and a click must find the row it was pressed on.
    patchChildren(this._top, [...top.childNodes]);
    patchChildren(
      this._execSection,
      loading ? [] : [this._executionsSection()]
    );
    if (focused) {
      this.node
        .querySelector<HTMLElement>(
          `[data-execution-id="${CSS.escape(focused)}"]`
        )
        ?.focus();
    }
  }

  private _updateWorkflowsSection(): void {
    const workflows = this.service.model.workflows;
    const query = this._filter.value.trim().toLowerCase();
    const matching = query
      ? workflows.filter(wf =>
          [wf.name, wf.id, wf.description].some(text =>
            (text ?? '').toLowerCase().includes(query)
          )
        )
      : workflows;
    const list = h('ul', {
      class: 'jp-TaskflowPanel-list jp-TaskflowPanel-workflows'
    });
    for (const wf of matching.slice(0, this._limit)) {
      const run = h(
        'button',
        {
          class: 'jp-Taskflow-iconButton',
          title: `Run ${wf.name || wf.id}`,
          'data-action': 'run'
        },
        '▶'
      );
      run.onclick = ev => {
        ev.stopPropagation();
        run.disabled = true;
        this.actions
          .runWorkflow(wf.id)
          .catch(err => console.error(describeError(err)))
          .finally(() => (run.disabled = false));
      };
      const item = h(
        'li',
        {
          class: 'jp-TaskflowPanel-workflow',
          'data-workflow-id': wf.id,
          title: `${wf.description ? `${wf.description}\n` : ''}Open ${wf.id}: definition, revisions, history`,
          tabindex: 0
        },
        h('span', { class: 'jp-TaskflowPanel-name' }, wf.name || wf.id),
        h(
          'span',
          { class: 'jp-TaskflowPanel-meta' },
          plural(wf.tasks?.length ?? 0, 'task') +
            (wf.revision ? ` · rev ${wf.revision}` : '')
        ),
        h(
          'span',
          { class: 'jp-TaskflowPanel-actions' },
          this._pauseButton(wf),
          this._runWithParametersButton(wf),
          run
        ),
        this._scheduleLine(wf),
        this._missedBanner(wf)
      );
      item.onclick = () => this.actions.openWorkflow(wf.id);
      item.onkeydown = ev => {
        if (ev.target === item && (ev.key === 'Enter' || ev.key === ' ')) {
          ev.preventDefault();
          this.actions.openWorkflow(wf.id);
        }
      };
      list.appendChild(item);
    }
    const more = matching.length - this._limit;
    this._more.textContent = `Show ${Math.min(more, WORKFLOW_PAGE)} more (of ${more})`;
    this._more.hidden = more <= 0;
    this._wfTitle.textContent = `Workflows (${workflows.length})`;
    this._filter.hidden = !(workflows.length >= FILTER_FROM || query);
    const parts: Array<HTMLElement | null> = [
      query && !matching.length
        ? h(
            'p',
            { class: 'jp-Taskflow-empty' },
            `No workflow matches "${query}".`
          )
        : null,
      workflows.length
        ? list
        : h(
            'p',
            { class: 'jp-Taskflow-empty' },
            'No workflows yet. POST a definition to /workflows, or use the %%taskflow cell magic in a notebook.'
          )
    ];
    patchChildren(
      this._wfContent,
      parts.filter((n): n is HTMLElement => n !== null)
    );
  }

  /**
   * The schedule in words and the next run ("next run 14:05:00 · in 3 min",
   * its title the UTC instant), or "paused"; nothing without a schedule.
   */
  private _scheduleLine(wf: Workflow): HTMLElement | null {
    const state = scheduleState(wf);
    if (!state) {
      return null;
    }
    const error = this._scheduleErrors.get(wf.id);
    return h(
      'div',
      {
        class: 'jp-TaskflowPanel-schedule',
        'data-paused': state.paused ? 'true' : 'false'
      },
      h(
        'span',
        {
          class: 'jp-TaskflowPanel-scheduleText',
          title: `Schedule: ${state.words}`
        },
        icon('clock') as unknown as Node,
        state.words
      ),
      state.paused
        ? h(
            'span',
            {
              class: 'jp-TaskflowPanel-paused',
              title: 'Paused: no slot fires until the schedule is resumed'
            },
            'paused'
          )
        : wf.nextRunTime
          ? nextRunSpan(wf.nextRunTime)
          : null,
      error
        ? h(
            'span',
            { class: 'jp-TaskflowPanel-scheduleError', role: 'alert' },
            error
          )
        : null
    );
  }

  /** Pause (two bars) or resume (an outlined play) the workflow's schedule. */
  private _pauseButton(wf: Workflow): HTMLElement | null {
    if (!wf.schedule) {
      return null;
    }
    const pausing = !wf.paused;
    const label = pausing ? 'Pause schedule' : 'Resume schedule';
    const button = h(
      'button',
      {
        class: 'jp-Taskflow-iconButton',
        title: label,
        'aria-label': label,
        'data-action': pausing ? 'pause' : 'resume',
        disabled: this._toggling.has(wf.id)
      },
      icon(pausing ? 'pause' : 'resume') as unknown as Node
    );
    button.onclick = ev => {
      ev.stopPropagation();
      this._toggling.add(wf.id);
      this._scheduleErrors.delete(wf.id);
      button.disabled = true;
      this.service
        .setPaused(wf.id, pausing)
        .catch(err =>
          this._scheduleErrors.set(
            wf.id,
            `${label} failed: ${describeError(err)}`
          )
        )
        .finally(() => {
          this._toggling.delete(wf.id);
          this._render();
        });
    };
    return button;
  }

  /** Slots missed while no server ran, until dismissed. */
  private _missedBanner(wf: Workflow): HTMLElement | null {
    const key = missedSlotsKey(wf);
    if (!wf.missedSlots || !key || this._dismissed.has(key)) {
      return null;
    }
    const dismiss = h(
      'button',
      {
        class: 'jp-Taskflow-iconButton',
        title: 'Dismiss',
        'aria-label': 'Dismiss',
        'data-action': 'dismiss-missed'
      },
      '✕'
    );
    dismiss.onclick = ev => {
      ev.stopPropagation();
      this._dismissed.add(key);
      this._render();
    };
    return h(
      'div',
      {
        class: 'jp-TaskflowPanel-missed',
        role: 'status',
        'data-detected-at': wf.missedSlots.detectedAt ?? undefined
      },
      h('span', {}, missedSlotsText(wf.missedSlots)),
      dismiss
    );
  }

  /** ⚙ "Run with parameters…", for a workflow that declares parameters. */
  private _runWithParametersButton(wf: Workflow): HTMLElement | null {
    const declared = Object.keys(wf.parameters ?? {});
    if (!declared.length) {
      return null;
    }
    const button = h(
      'button',
      {
        class: 'jp-Taskflow-iconButton',
        title: `Run with parameters… (${declared.join(', ')})`,
        'aria-label': 'Run with parameters…',
        'data-action': 'run-with-parameters'
      },
      '⚙'
    );
    button.onclick = ev => {
      ev.stopPropagation();
      this.actions
        .runWithParameters(wf.id)
        .catch(err => console.error(describeError(err)));
    };
    return button;
  }

  private _executionsSection(): HTMLElement {
    const executions = this.service.model.recentExecutions(50);
    const list = h('ul', {
      class: 'jp-TaskflowPanel-list jp-TaskflowPanel-executions'
    });
    for (const exec of executions) {
      const item = this._executionItem(exec);
      item.onclick = () => this.actions.openExecution(exec.id);
      item.onkeydown = ev => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          this.actions.openExecution(exec.id);
        }
      };
      list.appendChild(item);
    }
    return h(
      'section',
      {},
      h('h3', {}, 'Recent executions'),
      executions.length
        ? list
        : h('p', { class: 'jp-Taskflow-empty' }, 'No executions yet.')
    );
  }

  private _executionItem(exec: Execution): HTMLElement {
    const wf = this.service.model.workflow(exec.workflowId);
    const counts = taskCounts(exec);
    const finished = TERMINAL_EXECUTION.has(exec.status);
    const text = countsText(counts);
    return h(
      'li',
      {
        class: 'jp-TaskflowPanel-execution',
        'data-execution-id': exec.id,
        'data-status': exec.status,
        'data-workflow-id': exec.workflowId,
        title: `Open ${exec.id}`,
        tabindex: 0
      },
      badge(exec.status),
      h(
        'span',
        { class: 'jp-TaskflowPanel-name' },
        wf?.name || exec.workflowId || '(unknown workflow)'
      ),
      counts.total ? statusBar(counts, text) : null,
      h(
        'span',
        { class: 'jp-TaskflowPanel-meta' },
        triggerBadge(exec),
        exec.id
      ),
      h(
        'span',
        { class: 'jp-TaskflowPanel-meta jp-TaskflowPanel-counts' },
        [text, formatTime(exec.startTime ?? exec.createdAt)]
          .filter(Boolean)
          .join(' · '),
        ...runTime(exec, finished)
      )
    );
  }

  private _frame: number | null = null;
  /**
   * A big run changes the model hundreds of times a second: the sidebar is
   * redrawn at most every PANEL_RENDER_MS (each in a frame), not in every
   * frame, which the main thread (shared with the view being scrolled, on a
   * busy machine) cannot spare.
   */
  private _renders = new Throttle(
    () => this._scheduleRender(),
    PANEL_RENDER_MS
  );
  private _unsubscribe: Array<() => void>;
  private _filter: HTMLInputElement;
  private _body = h('div', { class: 'jp-TaskflowPanel-body' });
  private _top = h('div');
  private _wfTitle = h('h3', {}, 'Workflows');
  private _wfContent = h('div');
  private _wfSection: HTMLElement;
  private _execSection = h('div');
  private _more = h(
    'button',
    { class: 'jp-mod-styled jp-TaskflowPanel-more', 'data-action': 'more' },
    'Show more'
  );
  private _limit = WORKFLOW_FIRST;
  private _timer: number;
  /** Workflows whose pause/resume is in flight. */
  private _toggling = new Set<string>();
  private _scheduleErrors = new Map<string, string>();
  /** Missed-slots banners dismissed (by workflow and detection time). */
  private _dismissed = new Set<string>();
  private _overdueAsked = new Set<string>();
}
