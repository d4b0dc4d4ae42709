/**
 * The execution view (inside a MainAreaWidget): status (and a "scheduled"
 * badge with its slot, or "retry"), Run / Cancel / Retry, the DAG as SVG with
 * nodes coloured by status, the task table (with a notebook task's cell
 * progress and a link to its executed copy, and a tag on a task that runs a
 * stored notebook-function snapshot), and the logs of the selected task
 * (under the snapshot it runs). Live through the shared model; the full
 * execution detail and the definition (for the edges) are read over REST
 * when the view opens, when it finishes, and when a notebook task finishes
 * (its `output` is only in the detail). A mapped task is one node with its
 * instances' `done/total` and histogram; selecting it shows its instances
 * (`instances.ts`) instead of logs, and its instances' events re-read the
 * execution at most every `REFRESH_MS` rather than re-rendering per event.
 */

import { showErrorMessage } from '@jupyterlab/apputils';
import { Contents } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { DagLayout, edgePath, layoutDag } from './dag';
import { InstanceList, mappedNodeParts } from './instances';
import {
  doneText,
  isMapped,
  mapOver,
  mappedCounts,
  mappedText,
  REFRESH_MS,
  Throttle
} from './mapped';
import {
  badge,
  describeError,
  elapsedSpan,
  formatDuration,
  formatTime,
  h,
  runTime,
  s,
  statusBar,
  tickElapsed,
  triggerBadge
} from './dom';
import {
  countsText,
  Execution,
  snapshotText,
  abandonedText,
  watchAbandoned,
  TaskDefinition,
  TaskLogAttempt,
  TaskProgress,
  taskCounts,
  TaskRun,
  TERMINAL_EXECUTION,
  TERMINAL_TASK
} from './model';
import { TaskflowService } from './service';

export interface ExecutionActions {
  /** Open another execution (the one a Run or Retry created). */
  openExecution(id: string): void;
  /** Open a file of the server's root (a notebook task's output) in JupyterLab. */
  openPath(path: string): void;
}

type Logs =
  | { state: 'loading' }
  | { state: 'error'; message: string }
  | { state: 'ready'; attempts: TaskLogAttempt[] };

export class ExecutionView extends Widget {
  constructor(
    readonly executionId: string,
    private readonly service: TaskflowService,
    private readonly actions: ExecutionActions
  ) {
    super();
    this.addClass('jp-TaskflowExecution');
    this._unsubscribe = service.model.subscribe(() => this._onModelChanged());
    this._counts = new Throttle(
      () =>
        void this.service
          .loadExecution(this.executionId)
          .catch(() => undefined),
      REFRESH_MS
    );
    this._unsubscribeInstances = service.model.subscribeInstances(id => {
      if (id === this.executionId) {
        this._counts.request();
      }
    });
    this.title.label = `TaskFlow ${shortId(executionId)}`;
    this.title.caption = executionId;
    this._render();
    void this.reload();
    // Running tasks' elapsed times tick without a re-render.
    this._timer = window.setInterval(() => this._tick(), 1000);
  }

  /** Every second: running tasks' elapsed times; every other second, while an
   * ended execution may show an attempt still running in its thread, its detail. */
  private _tick(): void {
    tickElapsed(this.node);
    this._ticks += 1;
    const exec = this.service.model.execution(this.executionId);
    if (exec && this._ticks % 2 === 0 && watchAbandoned(exec, Date.now())) {
      void this.service
        .loadExecution(this.executionId)
        .then(() => this._render())
        .catch(() => undefined);
    }
  }

  dispose(): void {
    this._unsubscribe();
    this._unsubscribeInstances();
    this._counts.dispose();
    this._instances?.dispose();
    window.clearInterval(this._timer);
    if (this._frame !== null) {
      cancelAnimationFrame(this._frame);
    }
    super.dispose();
  }

  /** Read the execution and its definition revision over REST. */
  async reload(): Promise<void> {
    try {
      await this.service.loadExecution(this.executionId);
      this._error = null;
      const exec = this.service.model.execution(this.executionId);
      if (exec && !this._spec) {
        this._spec = await this._loadSpec(exec);
      }
    } catch (err) {
      this._error = describeError(err);
    }
    this._loaded = true;
    this._lastStatus = this.service.model.execution(this.executionId)?.status;
    this._render();
  }

  private async _loadSpec(exec: Execution): Promise<TaskDefinition[] | null> {
    try {
      const wf = await api.getWorkflow(
        exec.workflowId,
        exec.revision,
        this.service.settings
      );
      return wf.tasks;
    } catch {
      // Deleted definition: draw the tasks we know, without edges.
      return this.service.model.workflow(exec.workflowId)?.tasks ?? null;
    }
  }

  private _onModelChanged(): void {
    const exec = this.service.model.execution(this.executionId);
    if (!exec) {
      return;
    }
    // When the run finishes, read the detail (errors, tracebacks) once more,
    // and the selected task's logs.
    if (exec.status !== this._lastStatus) {
      const finished = TERMINAL_EXECUTION.has(exec.status);
      this._lastStatus = exec.status;
      if (finished) {
        void this.reload();
      }
    }
    this._reloadForOutputs(exec);
    this._reloadForCounts(exec);
    const sel =
      this._selected && exec.tasks.find(t => t.name === this._selected);
    if (sel && sel.status !== this._selectedStatus) {
      this._selectedStatus = sel.status;
      if (TERMINAL_TASK.has(sel.status) && !this._isMapped(sel)) {
        void this._loadLogs(sel.name);
      }
    }
    this._scheduleRender();
  }

  /** A notebook task that just finished has an `output` only the detail carries. */
  private _reloadForOutputs(exec: Execution): void {
    const types = new Map((this._spec ?? []).map(t => [t.name, t.type]));
    const finished = exec.tasks.filter(
      t =>
        TERMINAL_TASK.has(t.status) &&
        types.get(t.name) === 'notebook' &&
        !t.output &&
        !this._askedOutput.has(t.name)
    );
    if (finished.length && !TERMINAL_EXECUTION.has(exec.status)) {
      finished.forEach(t => this._askedOutput.add(t.name));
      void this.service.loadExecution(this.executionId).catch(() => undefined);
    }
  }

  /** A mapped task that just expanded has counts only the detail carries. */
  private _reloadForCounts(exec: Execution): void {
    const waiting = exec.tasks.some(
      t =>
        t.status !== 'pending' &&
        this._isMapped(t) &&
        !mappedCounts(t) &&
        !this._askedCounts.has(t.name)
    );
    if (waiting) {
      exec.tasks
        .filter(t => t.status !== 'pending' && this._isMapped(t))
        .forEach(t => this._askedCounts.add(t.name));
      this._counts.request();
    }
  }

  private _isMapped(t: TaskRun): boolean {
    return isMapped(
      t,
      this._spec?.find(d => d.name === t.name)
    );
  }

  private _scheduleRender(): void {
    if (this._frame === null) {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._render();
      });
    }
  }

  private async _act(
    name: string,
    fn: () => Promise<Execution | void>
  ): Promise<void> {
    this._busy = name;
    this._actionError = null;
    this._render();
    try {
      const created = await fn();
      if (created && created.id) {
        this.service.model.upsertExecutions([created]);
        if (created.id !== this.executionId) {
          this.actions.openExecution(created.id);
        }
      }
      await this.service.loadExecution(this.executionId).catch(() => undefined);
    } catch (err) {
      this._actionError = `${name} failed: ${describeError(err)}`;
    } finally {
      this._busy = null;
      this._render();
    }
  }

  private _select(task: string): void {
    this._selected = task;
    const run = this.service.model
      .execution(this.executionId)
      ?.tasks.find(t => t.name === task);
    this._selectedStatus = run?.status;
    if (this._instances?.task !== task) {
      this._instances?.dispose();
      this._instances = null;
    }
    if (run && this._isMapped(run)) {
      this._render(); // its instances, not its logs
      return;
    }
    void this._loadLogs(task);
  }

  /** The instance list of the selected mapped task (kept across renders). */
  private _instanceList(exec: Execution, run: TaskRun): HTMLElement {
    if (!this._instances) {
      const def = this._spec?.find(d => d.name === run.name);
      this._instances = new InstanceList(
        this.executionId,
        run.name,
        mapOver(def),
        this.service,
        {
          retry: () =>
            void this._act('Retry', () =>
              api.retryExecution(this.executionId, this.service.settings)
            ),
          busy: () => this._busy !== null
        }
      );
    }
    this._instances.update(exec);
    return this._instances.node;
  }

  private async _loadLogs(task: string): Promise<void> {
    this._logs = { state: 'loading' };
    this._render();
    try {
      const { attempts } = await api.getTaskLogs(
        this.executionId,
        task,
        this.service.settings
      );
      if (this._selected === task) {
        this._logs = { state: 'ready', attempts };
      }
    } catch (err) {
      if (this._selected === task) {
        this._logs = { state: 'error', message: describeError(err) };
      }
    }
    this._render();
  }

  private _render(): void {
    const exec = this.service.model.execution(this.executionId);
    if (!exec) {
      this.node.replaceChildren(
        this._loaded
          ? h(
              'div',
              { class: 'jp-Taskflow-error', role: 'alert' },
              `Cannot load execution ${this.executionId}: ${this._error ?? 'not found'}`
            )
          : h(
              'div',
              { class: 'jp-Taskflow-loading' },
              `Loading ${this.executionId}…`
            )
      );
      return;
    }
    const name =
      this.service.model.workflow(exec.workflowId)?.name || exec.workflowId;
    this.title.label = `${name} · ${shortId(exec.id)}`;
    const problem = this._actionError ?? this._error;
    const counts = taskCounts(exec);
    this.node.replaceChildren(
      this._header(exec),
      counts.total ? statusBar(counts, countsText(counts)) : '',
      ...(problem
        ? [h('div', { class: 'jp-Taskflow-error', role: 'alert' }, problem)]
        : []),
      this._graph(exec),
      this._table(exec),
      this._logsView(exec)
    );
  }

  private _header(exec: Execution): HTMLElement {
    const finished = TERMINAL_EXECUTION.has(exec.status);
    const wf = this.service.model.workflow(exec.workflowId);
    const counts = taskCounts(exec);
    const button = (
      label: string,
      title: string,
      enabled: boolean,
      fn: () => Promise<Execution | void>
    ) => {
      const b = h(
        'button',
        {
          class: 'jp-mod-styled jp-Taskflow-action',
          title,
          'data-action': label.toLowerCase(),
          disabled: !enabled || this._busy !== null
        },
        this._busy === label ? `${label}…` : label
      );
      b.onclick = () => void this._act(label, fn);
      return b;
    };
    const settings = this.service.settings;
    return h(
      'div',
      { class: 'jp-TaskflowExecution-header' },
      h(
        'div',
        { class: 'jp-TaskflowExecution-title' },
        h('h2', {}, wf?.name || exec.workflowId),
        badge(exec.status),
        triggerBadge(exec),
        h(
          'span',
          { class: 'jp-TaskflowPanel-meta jp-TaskflowExecution-meta' },
          [
            countsText(counts),
            exec.id,
            exec.revision ? `rev ${exec.revision}` : '',
            exec.parentId ? `retry of ${exec.parentId}` : '',
            exec.scheduledFor ? `slot ${formatTime(exec.scheduledFor)}` : '',
            exec.startTime ? `started ${formatTime(exec.startTime)}` : ''
          ]
            .filter(Boolean)
            .join(' · '),
          ...runTime(exec, finished)
        )
      ),
      h(
        'div',
        { class: 'jp-TaskflowExecution-actions' },
        button(
          'Run',
          'Start a new execution of this workflow',
          !!exec.workflowId,
          () => api.runWorkflow(exec.workflowId, undefined, settings)
        ),
        button('Cancel', 'Cancel this execution', !finished, () =>
          api.cancelExecution(exec.id, settings)
        ),
        button(
          'Retry',
          'New execution that reuses completed results and reruns the rest',
          exec.status === 'failed' || exec.status === 'cancelled',
          () => api.retryExecution(exec.id, settings)
        ),
        button('Refresh', 'Reload from the server', true, () => this.reload())
      )
    );
  }

  private _graph(exec: Execution): HTMLElement {
    const runs = new Map(exec.tasks.map(t => [t.name, t]));
    const spec: TaskDefinition[] =
      this._spec ??
      exec.tasks.map(t => ({ name: t.name, type: 'python', dependencies: [] }));
    // Tasks only the execution knows (should not happen) are drawn too.
    const names = new Set(spec.map(t => t.name));
    const all = [
      ...spec,
      ...exec.tasks
        .filter(t => !names.has(t.name))
        .map(t => ({ name: t.name, type: '?' }))
    ];
    if (!all.length) {
      return h('div', { class: 'jp-Taskflow-empty' }, 'No tasks.');
    }
    const layout = this._dagLayout(all);
    const W = layout.nodes[0]?.width ?? 140;
    const H = layout.nodes[0]?.height ?? 36;
    const svg = s('svg', {
      class: 'jp-TaskflowDag',
      width: layout.width,
      height: layout.height,
      viewBox: `0 0 ${layout.width} ${layout.height}`,
      role: 'img',
      'aria-label': 'Workflow graph'
    });
    svg.appendChild(
      s(
        'defs',
        {},
        s(
          'marker',
          {
            id: this._markerId,
            viewBox: '0 0 10 10',
            refX: 10,
            refY: 5,
            markerWidth: 7,
            markerHeight: 7,
            orient: 'auto'
          },
          s('path', {
            d: 'M0,0 L10,5 L0,10 z',
            class: 'jp-TaskflowDag-arrowhead'
          })
        )
      )
    );
    for (const e of layout.edges) {
      svg.appendChild(
        s('path', {
          class: 'jp-TaskflowDag-edge',
          'data-from': e.from,
          'data-to': e.to,
          d: edgePath(e.points),
          'marker-end': `url(#${this._markerId})`
        })
      );
    }
    const types = new Map(all.map(t => [t.name, t.type]));
    for (const n of layout.nodes) {
      const run = runs.get(n.name);
      const status = run?.status ?? 'pending';
      const progress = run?.progress;
      const def = all.find(t => t.name === n.name);
      const mapped = run ? isMapped(run, def) : !!mapOver(def);
      const counts = mapped ? mappedCounts(run) : null;
      const sub = mapped
        ? `${types.get(n.name) ?? ''} · ${counts ? doneText(counts) : 'mapped'}`
        : `${types.get(n.name) ?? ''} · ${
            status === 'running' && progress ? cellText(progress) : status
          }`;
      const parts = mapped ? mappedNodeParts(counts, W, H) : null;
      const g = s(
        'g',
        {
          class: `jp-TaskflowDag-node jp-Taskflow-status-${status}${this._selected === n.name ? ' jp-mod-selected' : ''}`,
          'data-task': n.name,
          'data-status': status,
          'data-mapped': mapped ? doneText(counts) || 'waiting' : undefined,
          transform: `translate(${n.x},${n.y})`
        },
        s(
          'title',
          {},
          `${n.name}: ${status}${
            mapped ? ` · ${mappedText(counts, mapOver(def))}` : ''
          }`
        ),
        parts?.behind,
        s('rect', { width: W, height: H, rx: 6 }),
        s(
          'text',
          { x: 10, y: 15, class: 'jp-TaskflowDag-label' },
          truncate(n.name, 18)
        ),
        s(
          'text',
          { x: 10, y: mapped ? 26 : 29, class: 'jp-TaskflowDag-sub' },
          sub
        ),
        parts?.strip
      );
      g.addEventListener('click', () => this._select(n.name));
      svg.appendChild(g);
    }
    return h(
      'div',
      { class: 'jp-TaskflowExecution-graph' },
      svg as unknown as Node
    );
  }

  /** The layout only changes with the definition: not on every event. */
  private _dagLayout(tasks: Array<{ name: string; dependencies?: string[] }>) {
    const key = JSON.stringify(tasks.map(t => [t.name, t.dependencies ?? []]));
    if (!this._dag || this._dag.key !== key) {
      this._dag = { key, layout: layoutDag(tasks) };
    }
    return this._dag.layout;
  }

  private _table(exec: Execution): HTMLElement {
    // The column only when a task has something to show in it.
    const notebooks = exec.tasks.some(t => t.progress || t.output);
    const mapped = exec.tasks.some(t => this._isMapped(t));
    const rows = exec.tasks.map(t => this._row(t, notebooks, mapped));
    return h(
      'table',
      { class: 'jp-TaskflowExecution-tasks' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...[
            'Task',
            'Status',
            ...(notebooks ? ['Notebook'] : []),
            ...(mapped ? ['Instances'] : []),
            'Attempts',
            'Duration',
            'Error'
          ].map(c => h('th', {}, c))
        )
      ),
      h('tbody', {}, ...rows)
    );
  }

  private _row(t: TaskRun, notebooks: boolean, mapped: boolean): HTMLElement {
    const tr = h(
      'tr',
      {
        class: this._selected === t.name ? 'jp-mod-selected' : undefined,
        'data-task': t.name,
        'data-status': t.status,
        title: 'Show logs'
      },
      h('td', {}, t.name, this._snapshotTag(t.name)),
      h('td', {}, badge(t.status)),
      notebooks ? this._notebookCell(t) : null,
      mapped ? this._instancesCell(t) : null,
      h('td', {}, t.attempts !== undefined ? String(t.attempts) : ''),
      h(
        'td',
        { class: 'jp-TaskflowExecution-duration' },
        t.status === 'running' && t.startTime
          ? elapsedSpan(t.startTime)
          : formatDuration(t.duration)
      ),
      h(
        'td',
        {
          class: t.error
            ? 'jp-TaskflowExecution-error'
            : 'jp-TaskflowExecution-reason'
        },
        t.error ?? t.reason ?? '',
        abandonedText(t)
          ? h(
              'div',
              { class: 'jp-TaskflowExecution-abandoned' },
              abandonedText(t) ?? ''
            )
          : null
      )
    );
    tr.onclick = () => this._select(t.name);
    return tr;
  }

  /** A mapped task's counts: its histogram and "742/1000 completed · …". */
  private _instancesCell(t: TaskRun): HTMLElement {
    if (!this._isMapped(t)) {
      return h('td', {});
    }
    const c = mappedCounts(t);
    const def = this._spec?.find(d => d.name === t.name);
    const text = mappedText(c, mapOver(def));
    return h(
      'td',
      {
        class: 'jp-TaskflowExecution-instances',
        'data-done': doneText(c) || undefined
      },
      c
        ? statusBar(
            {
              ...c,
              skipped: 0,
              done: c.completed,
              total: c.total
            },
            text
          )
        : null,
      h('span', { class: 'jp-TaskflowExecution-instancesText' }, text)
    );
  }

  /** The definition's params of a task (for its stored snapshot). */
  private _params(task: string): Record<string, unknown> | undefined {
    const def = this._spec?.find(t => t.name === task);
    return def?.params as Record<string, unknown> | undefined;
  }

  /** A small "snapshot" tag after a task that runs a notebook snapshot. */
  private _snapshotTag(task: string): HTMLElement | null {
    const params = this._params(task);
    const text = snapshotText(params);
    return text
      ? h(
          'span',
          {
            class: 'jp-TaskflowExecution-snapshotTag',
            title: `${text} (${String(params?.snapshot)})`
          },
          'snapshot'
        )
      : null;
  }

  /** A notebook task's cell progress, and the link to its executed copy. */
  private _notebookCell(t: TaskRun): HTMLElement {
    const cell = h('td', { class: 'jp-TaskflowExecution-notebook' });
    if (t.progress) {
      cell.appendChild(progressBar(t.progress, t.status));
    }
    const output = t.output;
    if (output) {
      const link = h(
        'a',
        {
          href: '#',
          class: 'jp-TaskflowExecution-output',
          title: `Open ${output}`,
          'data-path': output
        },
        'output notebook'
      );
      link.onclick = ev => {
        ev.preventDefault();
        ev.stopPropagation(); // not a click on the row (logs)
        this.actions.openPath(output);
      };
      cell.appendChild(link);
    }
    return cell;
  }

  private _logsView(exec: Execution): HTMLElement {
    if (!this._selected) {
      return h(
        'div',
        { class: 'jp-TaskflowExecution-logs jp-Taskflow-empty' },
        'Select a task to see its logs.'
      );
    }
    const run = exec.tasks.find(t => t.name === this._selected);
    if (run && this._isMapped(run)) {
      return this._instanceList(exec, run);
    }
    const params = this._params(this._selected);
    const snapshot = snapshotText(params);
    const parts: Array<Node | null> = [
      h('h3', {}, `Logs of ${this._selected}`),
      snapshot
        ? h(
            'p',
            {
              class: 'jp-TaskflowExecution-snapshot',
              title: `${String(params?.callable ?? '')} from the stored snapshot ${String(params?.snapshot)}: what the notebook defined when it registered or scheduled the workflow`
            },
            snapshot
          )
        : null
    ];
    const logs = this._logs;
    if (logs.state === 'loading') {
      parts.push(h('div', { class: 'jp-Taskflow-loading' }, 'Loading logs…'));
    } else if (logs.state === 'error') {
      parts.push(
        h(
          'div',
          { class: 'jp-Taskflow-error' },
          `Cannot load logs: ${logs.message}`
        )
      );
    } else if (!logs.attempts.length) {
      parts.push(h('p', { class: 'jp-Taskflow-empty' }, 'No output captured.'));
    } else {
      logs.attempts.forEach((a, i) => {
        parts.push(h('h4', {}, `Attempt ${a.attempt ?? i + 1}`));
        if (a.stdout) {
          parts.push(
            h('pre', { class: 'jp-TaskflowExecution-stdout' }, a.stdout)
          );
        }
        if (a.stderr) {
          parts.push(
            h('pre', { class: 'jp-TaskflowExecution-stderr' }, a.stderr)
          );
        }
        if (!a.stdout && !a.stderr) {
          parts.push(h('p', { class: 'jp-Taskflow-empty' }, 'No output.'));
        }
      });
    }
    const shown =
      logs.state === 'ready' &&
      logs.attempts.some(a => a.stderr?.includes(run?.traceback?.trim() ?? ''));
    if (run?.traceback && !shown) {
      parts.push(
        h('h4', {}, 'Traceback'),
        h('pre', { class: 'jp-TaskflowExecution-stderr' }, run.traceback)
      );
    }
    return h(
      'div',
      { class: 'jp-TaskflowExecution-logs', 'data-task': this._selected },
      ...parts
    );
  }

  private _unsubscribe: () => void;
  private _unsubscribeInstances: () => void;
  private _counts: Throttle;
  private _instances: InstanceList | null = null;
  private _askedCounts = new Set<string>();
  private _timer: number;
  // One marker id per view: a url(#id) into a hidden tab's SVG draws nothing.
  private _markerId = `jp-TaskflowDag-arrow-${++markerCount}`;
  private _frame: number | null = null;
  private _spec: TaskDefinition[] | null = null;
  private _dag: { key: string; layout: DagLayout } | null = null;
  private _loaded = false;
  private _error: string | null = null;
  private _actionError: string | null = null;
  private _busy: string | null = null;
  private _lastStatus: string | undefined;
  private _ticks = 0;
  private _selected: string | null = null;
  private _selectedStatus: string | undefined;
  private _logs: Logs = { state: 'loading' };
  private _askedOutput = new Set<string>();
}

let markerCount = 0;

/**
 * Open a notebook task's executed copy with `open` (docmanager), after
 * asking the contents service for it, so that a refusal is explained rather
 * than left to a bare "File Load Error": Jupyter's contents service serves no
 * hidden folder (the default runs_dir is `.taskflow/runs`) unless the server
 * allows it.
 */
export async function openOutput(
  path: string,
  contents: Contents.IManager,
  open: (path: string) => unknown
): Promise<void> {
  try {
    await contents.get(path, { content: false });
  } catch (err) {
    const hidden = path.split('/').some(part => part.startsWith('.'));
    await showErrorMessage(
      'Cannot open the output notebook',
      `${path}: ${describeError(err)}` +
        (hidden
          ? '. Jupyter serves no file in a hidden folder unless the server runs with ' +
            '--ContentsManager.allow_hidden=True; or set TaskFlowApp.runs_dir to a ' +
            'folder whose name does not start with a dot.'
          : '')
    );
    return;
  }
  open(path);
}

/** "cell 3/7": code cells executed of code cells. */
function cellText(p: TaskProgress): string {
  return `cell ${p.done}/${p.total}`;
}

function progressBar(p: TaskProgress, status: string): HTMLElement {
  const pct = p.total > 0 ? Math.round((100 * p.done) / p.total) : 0;
  return h(
    'div',
    {
      class: `jp-TaskflowProgress jp-Taskflow-status-${status}`,
      role: 'progressbar',
      'aria-valuemin': 0,
      'aria-valuemax': p.total,
      'aria-valuenow': p.done,
      'aria-valuetext': cellText(p),
      'data-done': p.done,
      'data-total': p.total
    },
    h('div', { class: 'jp-TaskflowProgress-bar', style: `width: ${pct}%` }),
    h('span', { class: 'jp-TaskflowProgress-text' }, cellText(p))
  );
}

/** "exec_3f2a9c…" -> "exec_3f2a": enough to tell tabs apart. */
function shortId(id: string): string {
  const m = /^([a-z]+_)?([0-9a-f]+)$/i.exec(id);
  return m ? `${m[1] ?? ''}${m[2].slice(0, 4)}` : id.slice(0, 12);
}

function truncate(text: string, n: number): string {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}
