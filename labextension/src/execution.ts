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
 *
 * Under the DAG, a timeline (`gantt.ts`) draws every attempt of every task,
 * live; a task reused from an earlier execution is marked so, with a link to
 * where it ran. The selected task's detail lists its attempts (start, end,
 * duration, error) with each attempt's logs, and follows them live while the
 * task runs (the logs route every `LOG_POLL_MS`, until it ends).
 *
 * The sections persist across renders and patch what changed: the graph's
 * nodes and the table's rows are keyed by task and rewritten only when their
 * state did, the timeline draws only its visible rows, the logs only when
 * they changed (keeping each log's scroll, or its tail while it grows). An
 * execution of 5,000 tasks thus costs a render per frame of the few tasks
 * that moved, not of all of them.
 */

import { showErrorMessage } from '@jupyterlab/apputils';
import { Contents } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import * as api from './api';
import { DagLayout, layoutDag } from './dag';
import { Gantt } from './gantt';
import { dagSvg, newMarkerId, truncate } from './graph';
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
  morph,
  patchChildren,
  placeChildren,
  runTime,
  s,
  shortId,
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
import { Attempt, AttemptMemory } from './timeline';

/** A node of the drawing: a definition's task, or one only the execution has. */
type GraphTask =
  TaskDefinition | { name: string; type: string; dependencies?: string[] };

/** From this many tasks the table draws only the rows in its scrolled window. */
const VIRTUAL_FROM = 500;
/** A virtual table's row height (CSS fixes it) and its box's height. */
const ROW_PX = 29;
const TABLE_MAX_PX = 480;

/** The least time between two renders of a big execution's view. */
const BIG_RENDER_MS = 300;

/**
 * How long after the last scroll a big execution's view waits before a live
 * re-render: its SVG of thousands of nodes costs a layout that would land in
 * a scrolled frame; the state catches up as soon as scrolling pauses.
 */
const SCROLL_IDLE_MS = 250;

/** What one frame may spend rebuilding table rows, and graph nodes. */
const RENDER_BUDGET_MS = 8;

/** What a table row shows of its task: the row is rebuilt when it changes. */
function rowSignature(t: TaskRun, selected: boolean): string {
  return JSON.stringify([
    t.status,
    t.attempts,
    t.duration,
    t.startTime,
    t.error,
    t.reason,
    t.progress,
    t.output,
    t.mapped,
    t.reusedFrom,
    t.abandoned?.attempt,
    selected
  ]);
}

/** How often a running task's logs are read again while it is shown. */
export const LOG_POLL_MS = 1000;

export interface ExecutionActions {
  /**
   * Open another execution (the one a Run or Retry created, or the one a
   * reused task ran in, with that task selected).
   */
  openExecution(id: string, task?: string): void;
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
    this._gantt = new Gantt(this._memory, {
      select: (task, attempt) => this.select(task, attempt),
      openExecution: (id, task) => this.actions.openExecution(id, task)
    });
    this.title.label = `TaskFlow ${shortId(executionId)}`;
    this.title.caption = executionId;
    // any scroll (the view, its timeline, its table, their parents): capture
    window.addEventListener('scroll', this._onScroll, {
      capture: true,
      passive: true
    });
    this._render();
    void this.reload();
    // Running tasks' elapsed times tick without a re-render.
    this._timer = window.setInterval(() => this._tick(), 1000);
  }

  /** Every second: running tasks' elapsed times; every other second, while an
   * ended execution may show an attempt still running in its thread, its detail. */
  private _tick(): void {
    tickElapsed(this.node);
    const live = this.service.model.execution(this.executionId);
    if (
      live &&
      !TERMINAL_EXECUTION.has(live.status) &&
      !this._scrollingBig(live)
    ) {
      this._gantt.update(live, this._selected); // running bars grow
    }
    this._ticks += 1;
    const exec = this.service.model.execution(this.executionId);
    if (exec && this._ticks % 2 === 0 && watchAbandoned(exec, Date.now())) {
      this._rereadDue = true;
    }
    // A big detail's parse and merge would land in a scrolled frame: the
    // re-read waits for the scrolling to pause (at least one after the end).
    if (exec && this._rereadDue && !this._scrollingBig(exec)) {
      this._rereadDue = false;
      void this.service
        .loadExecution(this.executionId)
        .then(() => this._scheduleRender()) // not in a frame the user scrolls
        .catch(() => undefined);
    }
  }

  dispose(): void {
    window.removeEventListener('scroll', this._onScroll, { capture: true });
    this._unsubscribe();
    this._unsubscribeInstances();
    this._counts.dispose();
    this._instances?.dispose();
    this._gantt.dispose();
    window.clearInterval(this._timer);
    if (this._logTimer !== null) {
      window.clearTimeout(this._logTimer);
    }
    if (this._frame !== null) {
      cancelAnimationFrame(this._frame);
    }
    if (this._delay !== null) {
      window.clearTimeout(this._delay);
    }
    super.dispose();
  }

  /** Read the execution and its definition revision over REST. */
  async reload(): Promise<void> {
    const first = !this._loaded;
    try {
      await this.service.loadExecution(this.executionId);
      this._error = null;
      const exec = this.service.model.execution(this.executionId);
      if (exec && !this._spec) {
        this._spec = await this._loadSpec(exec);
        this._specVersion += 1;
      }
    } catch (err) {
      this._error = describeError(err);
    }
    this._loaded = true;
    this._lastStatus = this.service.model.execution(this.executionId)?.status;
    if (first) {
      this._render();
    } else {
      this._scheduleRender(); // a re-read: as live updates, not in a scrolled frame
    }
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

  /**
   * On every change of the model (hundreds a second in a big run): only
   * what is cheap; the scans over the tasks wait for the next frame.
   */
  private _onModelChanged(): void {
    const exec = this.service.model.execution(this.executionId);
    if (!exec || exec === this._seen) {
      return; // another execution changed
    }
    this._seen = exec;
    // When the run finishes, read the detail (errors, tracebacks) once more,
    // and the selected task's logs.
    if (exec.status !== this._lastStatus) {
      const finished = TERMINAL_EXECUTION.has(exec.status);
      this._lastStatus = exec.status;
      if (finished) {
        void this.reload();
      }
    }
    this._changed = true;
    this._scheduleRender();
  }

  /** Once a frame after changes: what the tasks' new states call for. */
  private _afterChanges(): void {
    const exec = this.service.model.execution(this.executionId);
    if (!exec || !this._changed) {
      return;
    }
    this._changed = false;
    this._reloadForOutputs(exec);
    this._reloadForCounts(exec);
    const sel =
      this._selected && exec.tasks.find(t => t.name === this._selected);
    if (sel && sel.status !== this._selectedStatus) {
      this._selectedStatus = sel.status;
      if (!this._isMapped(sel)) {
        if (TERMINAL_TASK.has(sel.status)) {
          void this._loadLogs(sel.name, true);
        } else {
          this._followLogs();
        }
      }
    }
    this._reloadForHistory(exec);
  }

  /** A notebook task that just finished has an `output` only the detail carries. */
  private _reloadForOutputs(exec: Execution): void {
    const finished = exec.tasks.filter(
      t =>
        TERMINAL_TASK.has(t.status) &&
        this._def(t.name)?.type === 'notebook' &&
        !t.output &&
        !this._askedOutput.has(t.name)
    );
    if (finished.length && !TERMINAL_EXECUTION.has(exec.status)) {
      finished.forEach(t => this._askedOutput.add(t.name));
      void this.service.loadExecution(this.executionId).catch(() => undefined);
    }
  }

  /**
   * A task that started another attempt: the attempt before it (start, end,
   * error) is in the detail's history only.
   */
  private _reloadForHistory(exec: Execution): void {
    let retried = false;
    for (const t of exec.tasks) {
      const n = t.attempts ?? 0;
      if (n > 1 && n > (this._attemptsSeen.get(t.name) ?? 1)) {
        retried = true;
      }
      if (n) {
        this._attemptsSeen.set(t.name, n);
      }
    }
    if (retried) {
      this._counts.request();
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
    return isMapped(t, this._def(t.name));
  }

  /** A task's definition, by name (a map: 5,000 tasks ask per frame). */
  private _def(name: string): TaskDefinition | undefined {
    if (this._defs?.spec !== this._spec) {
      this._defs = {
        spec: this._spec,
        byName: new Map((this._spec ?? []).map(d => [d.name, d]))
      };
    }
    return this._defs.byName.get(name);
  }

  /** The table's rows alone in the next frame (it scrolled). */
  private _scheduleTable(): void {
    if (this._tableFrame !== null) {
      return;
    }
    this._tableFrame = requestAnimationFrame(() => {
      this._tableFrame = null;
      const exec = this.service.model.execution(this.executionId);
      if (exec && this._tableState) {
        this._budgetEnd = performance.now() + RENDER_BUDGET_MS;
        this._updateTable(exec);
      }
    });
  }

  /**
   * A render in the next frame; for a big execution (VIRTUAL_FROM tasks)
   * not sooner than BIG_RENDER_MS after the last one: a change inside an SVG
   * of thousands of nodes costs the browser a layout of all of them, so
   * live updates come a few times a second, and the frames between stay
   * free for scrolling.
   */
  private _scheduleRender(): void {
    if (this._frame !== null || this._delay !== null) {
      return;
    }
    const exec = this.service.model.execution(this.executionId);
    const wait =
      (exec?.tasks.length ?? 0) >= VIRTUAL_FROM
        ? this._lastRender + BIG_RENDER_MS - performance.now()
        : 0;
    const frame = () => {
      this._frame = requestAnimationFrame(() => {
        this._frame = null;
        this._lastRender = performance.now();
        this._afterChanges();
        this._render();
      });
    };
    const later = (ms: number) => {
      this._delay = window.setTimeout(() => {
        this._delay = null;
        const rest = this._scrolledAt + SCROLL_IDLE_MS - performance.now();
        if (exec && this._scrollingBig(exec) && rest > 0) {
          later(rest); // still scrolling: after it
        } else {
          frame();
        }
      }, ms);
    };
    if (wait > 0 || (exec && this._scrollingBig(exec))) {
      later(
        Math.max(wait, this._scrolledAt + SCROLL_IDLE_MS - performance.now())
      );
    } else {
      frame();
    }
  }

  /** A big execution's view while it is being scrolled (SCROLL_IDLE_MS). */
  private _scrollingBig(exec: Execution): boolean {
    return (
      exec.tasks.length >= VIRTUAL_FROM &&
      performance.now() - this._scrolledAt < SCROLL_IDLE_MS
    );
  }

  private readonly _onScroll = (): void => {
    this._scrolledAt = performance.now();
  };

  private async _act(
    name: string,
    fn: () => Promise<Execution | void>
  ): Promise<void> {
    this._busy = name;
    this._actionError = null;
    this._render();
    try {
      const created = await fn();
      if (created && created.id && created.id !== this.executionId) {
        this.service.noteStarted(created.id);
      }
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

  /** Show `task`'s detail (its instances when mapped), `attempt` first. */
  select(task: string, attempt?: number): void {
    this._selectedAttempt = attempt ?? null;
    if (this._selected === task && this._logs.state !== 'loading') {
      this._logsKey = ''; // the same logs, another attempt to show
      this._render();
      return;
    }
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
      const def = this._def(run.name);
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

  /**
   * Read the selected task's logs; `quiet` keeps what is shown until they
   * arrive (a refresh, not a new task). A running task's are read again
   * every LOG_POLL_MS until it ends.
   */
  private async _loadLogs(task: string, quiet = false): Promise<void> {
    if (!quiet || this._logs.state !== 'ready') {
      this._logs = { state: 'loading' };
      this._logsVersion += 1;
      this._render();
    }
    try {
      const { attempts } = await api.getTaskLogs(
        this.executionId,
        task,
        this.service.settings
      );
      if (this._selected === task) {
        const same =
          this._logs.state === 'ready' &&
          JSON.stringify(this._logs.attempts) === JSON.stringify(attempts);
        if (!same) {
          this._logs = { state: 'ready', attempts };
          this._logsVersion += 1;
        }
      }
    } catch (err) {
      if (this._selected === task) {
        this._logs = { state: 'error', message: describeError(err) };
        this._logsVersion += 1;
      }
    }
    this._render();
    this._followLogs();
  }

  /** While the selected task runs, read its logs again in LOG_POLL_MS. */
  private _followLogs(): void {
    if (this._logTimer !== null || this.isDisposed) {
      return;
    }
    const run = this._selectedRun();
    if (!run || TERMINAL_TASK.has(run.status) || this._isMapped(run)) {
      return;
    }
    this._logTimer = window.setTimeout(() => {
      this._logTimer = null;
      const now = this._selectedRun();
      if (now && !TERMINAL_TASK.has(now.status) && !this.isDisposed) {
        void this._loadLogs(now.name, true);
      }
    }, LOG_POLL_MS);
  }

  private _selectedRun(): TaskRun | undefined {
    return this._selected
      ? this.service.model
          .execution(this.executionId)
          ?.tasks.find(t => t.name === this._selected)
      : undefined;
  }

  /**
   * True once this render spent its RENDER_BUDGET_MS on rebuilding rows (or
   * nodes): the rest waits for the next frame (which is then asked for), so
   * that a snapshot changing 5,000 tasks at once is drawn over a few frames
   * instead of freezing one.
   */
  private _overBudget(): boolean {
    if (performance.now() > this._budgetEnd) {
      this._unfinished = true;
      return true;
    }
    return false;
  }

  private _render(): void {
    this._unfinished = false;
    this._renderNow();
    if (this._unfinished) {
      this._scheduleRender();
    }
  }

  private _renderNow(): void {
    const exec = this.service.model.execution(this.executionId);
    if (!exec) {
      this._built = false;
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
    this.title.caption = `${name}: ${exec.id}`;
    if (!this._built) {
      this._built = true;
      this._graphBox.replaceChildren();
      this._graphState = null;
      this._tableState = null;
      this.node.replaceChildren(
        this._headerBox,
        this._barBox,
        this._problemBox,
        this._graphBox,
        this._gantt.node,
        this._tableBox,
        this._logsBox
      );
    }
    const problem = this._actionError ?? this._error;
    const counts = taskCounts(exec);
    // Patched, not replaced: the buttons stay under the pointer.
    patchChildren(this._headerBox, [this._header(exec)]);
    // The bar is the view's own child (styled as `> .jp-TaskflowStatusBar`).
    morph(
      this._barBox,
      counts.total
        ? statusBar(counts, countsText(counts))
        : h('div', { class: 'jp-TaskflowStatusBar', hidden: true })
    );
    patchChildren(
      this._problemBox,
      problem
        ? [h('div', { class: 'jp-Taskflow-error', role: 'alert' }, problem)]
        : []
    );
    // Each section its own budget: the graph's changes do not starve the table.
    this._budgetEnd = performance.now() + RENDER_BUDGET_MS;
    this._updateGraph(exec);
    this._memory.observe(exec);
    this._gantt.update(exec, this._selected);
    this._budgetEnd = performance.now() + RENDER_BUDGET_MS;
    this._updateTable(exec);
    this._updateLogs(exec);
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

  /** The spec's tasks, then any only the execution knows (drawn too). */
  private _allTasks(exec: Execution): GraphTask[] {
    // The same list while neither the definition nor the task count moved:
    // the layout is keyed on it, and 5,000 tasks ask every frame.
    const cached = this._all;
    if (
      cached &&
      cached.spec === this._spec &&
      cached.count === exec.tasks.length
    ) {
      return cached.tasks;
    }
    const tasks = this._collectTasks(exec);
    this._all = { spec: this._spec, count: exec.tasks.length, tasks };
    return tasks;
  }

  private _collectTasks(exec: Execution): GraphTask[] {
    const spec: GraphTask[] =
      this._spec ??
      exec.tasks.map(t => ({ name: t.name, type: 'python', dependencies: [] }));
    const names = new Set(spec.map(t => t.name));
    return [
      ...spec,
      ...exec.tasks
        .filter(t => !names.has(t.name))
        .map(t => ({ name: t.name, type: '?' }))
    ];
  }

  /**
   * The DAG: drawn again when the definition changes; otherwise only the
   * nodes whose state changed are replaced.
   */
  private _updateGraph(exec: Execution): void {
    const all = this._allTasks(exec);
    if (!all.length) {
      this._graphState = null;
      this._graphBox.replaceChildren(
        h('div', { class: 'jp-Taskflow-empty' }, 'No tasks.')
      );
      return;
    }
    const layout = this._dagLayout(all);
    if (
      this._graphState?.layout !== layout ||
      this._graphState.spec !== this._spec
    ) {
      const svg = dagSvg(layout, this._markerId);
      this._graphState = { layout, spec: this._spec, svg, nodes: new Map() };
      this._graphBox.replaceChildren(
        h(
          'div',
          { class: 'jp-TaskflowExecution-graph' },
          svg as unknown as Node
        )
      );
    }
    const state = this._graphState;
    const runs = this._runsByName(exec);
    const defs = this._graphDefs(all);
    const W = layout.nodes[0]?.width ?? 140;
    const H = layout.nodes[0]?.height ?? 36;
    for (const n of layout.nodes) {
      const run = runs.get(n.name);
      const selected = this._selected === n.name;
      const old = state.nodes.get(n.name);
      // The model replaces only the tasks that changed: the others are the
      // same objects, which costs a comparison, not a signature.
      if (old && old.run === run && old.selected === selected) {
        continue;
      }
      const def = defs.get(n.name);
      const sig = JSON.stringify([
        run?.status,
        run?.progress,
        run?.mapped,
        run?.reusedFrom,
        selected
      ]);
      if (old?.sig === sig) {
        old.run = run;
        continue;
      }
      if (this._overBudget()) {
        continue;
      }
      const g = this._node(n, run, def, W, H);
      if (old) {
        old.g.replaceWith(g);
      } else {
        state.svg.appendChild(g);
      }
      state.nodes.set(n.name, { sig, g, run, selected });
    }
  }

  /** The execution's tasks by name, once per execution object. */
  private _runsByName(exec: Execution): Map<string, TaskRun> {
    if (this._runs?.exec !== exec) {
      this._runs = { exec, byName: new Map(exec.tasks.map(t => [t.name, t])) };
    }
    return this._runs.byName;
  }

  private _graphDefs(all: GraphTask[]): Map<string, GraphTask> {
    if (this._allDefs?.all !== all) {
      this._allDefs = { all, byName: new Map(all.map(t => [t.name, t])) };
    }
    return this._allDefs.byName;
  }

  private _node(
    n: { name: string; x: number; y: number },
    run: TaskRun | undefined,
    def: GraphTask | undefined,
    W: number,
    H: number
  ): SVGElement {
    const status = run?.status ?? 'pending';
    const progress = run?.progress;
    const type = def?.type ?? '';
    const mapped = run ? isMapped(run, def) : !!mapOver(def);
    const counts = mapped ? mappedCounts(run) : null;
    const sub = mapped
      ? `${type} · ${counts ? doneText(counts) : 'mapped'}`
      : `${type} · ${
          status === 'running' && progress
            ? cellText(progress)
            : run?.reusedFrom
              ? 'reused'
              : status
        }`;
    const parts = mapped ? mappedNodeParts(counts, W, H) : null;
    const g = s(
      'g',
      {
        class: `jp-TaskflowDag-node jp-Taskflow-status-${status}${this._selected === n.name ? ' jp-mod-selected' : ''}`,
        'data-task': n.name,
        'data-status': status,
        'data-reused': run?.reusedFrom ? 'true' : undefined,
        'data-mapped': mapped ? doneText(counts) || 'waiting' : undefined,
        transform: `translate(${n.x},${n.y})`
      },
      s(
        'title',
        {},
        `${n.name}: ${status}${
          mapped ? ` · ${mappedText(counts, mapOver(def))}` : ''
        }${run?.reusedFrom ? ` · reused from ${run.reusedFrom}` : ''}`
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
    g.addEventListener('click', () => this.select(n.name));
    return g;
  }

  /** The layout only changes with the definition: not on every event. */
  private _dagLayout(tasks: Array<{ name: string; dependencies?: string[] }>) {
    if (this._dag?.tasks === tasks) {
      return this._dag.layout;
    }
    const key = JSON.stringify(tasks.map(t => [t.name, t.dependencies ?? []]));
    if (!this._dag || this._dag.key !== key) {
      this._dag = { key, tasks, layout: layoutDag(tasks) };
    }
    this._dag.tasks = tasks;
    return this._dag.layout;
  }

  /**
   * The task table: built again when its columns change; otherwise only
   * the rows whose task changed are replaced (and moved when the order did).
   */
  private _updateTable(exec: Execution): void {
    // The column only when a task has something to show in it.
    const notebooks = exec.tasks.some(t => t.progress || t.output);
    const mapped = exec.tasks.some(t => this._isMapped(t));
    const virtual = exec.tasks.length >= VIRTUAL_FROM;
    // The definition arriving changes rows (a snapshot's tag): all again.
    const columns = `${notebooks}/${mapped}/${virtual}/${this._specVersion}`;
    if (this._tableState?.columns !== columns) {
      const tbody = h('tbody', {});
      const table = h(
        'table',
        {
          class: `jp-TaskflowExecution-tasks${virtual ? ' jp-mod-virtual' : ''}`,
          'data-tasks': exec.tasks.length
        },
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
        tbody
      );
      const scroller = virtual
        ? h('div', { class: 'jp-TaskflowExecution-tasksScroller' }, table)
        : null;
      if (scroller) {
        this._tableTop = 0;
        scroller.onscroll = () => {
          this._tableTop = scroller.scrollTop; // read here, not while drawing
          this._scheduleTable();
        };
      }
      this._tableState = {
        columns,
        tbody,
        rows: new Map(),
        order: '',
        scroller,
        before: h('tr', { class: 'jp-mod-spacer', 'aria-hidden': 'true' }),
        after: h('tr', { class: 'jp-mod-spacer', 'aria-hidden': 'true' })
      };
      this._tableBox.replaceChildren(scroller ?? table);
    }
    const state = this._tableState;
    // A big table draws only the rows in (or near) its scrolled window.
    let first = 0;
    let last = exec.tasks.length;
    if (state.scroller) {
      const shown = Math.ceil(TABLE_MAX_PX / ROW_PX);
      first = Math.max(0, Math.floor(this._tableTop / ROW_PX) - 10);
      last = Math.min(exec.tasks.length, first + shown + 20);
      state.before.style.height = `${first * ROW_PX}px`;
      state.after.style.height = `${(exec.tasks.length - last) * ROW_PX}px`;
    }
    const rows: HTMLElement[] = [];
    for (let i = first; i < last; i++) {
      const t = exec.tasks[i];
      let row = state.rows.get(t.name);
      const selected = this._selected === t.name;
      if (row && row.run === t && row.selected === selected) {
        rows.push(row.tr); // the same task object: unchanged
        continue;
      }
      const sig = rowSignature(t, selected);
      if (row && row.sig === sig) {
        row.run = t;
        row.selected = selected;
      } else {
        if (this._overBudget()) {
          if (row) {
            rows.push(row.tr); // stale for a frame or two
          }
          continue;
        }
        const tr = this._row(t, notebooks, mapped);
        row?.tr.replaceWith(tr);
        row = { sig, tr, run: t, selected };
        state.rows.set(t.name, row);
      }
      rows.push(row.tr);
    }
    const order = rows.map(r => r.dataset.task).join('\u0000');
    if (order !== state.order) {
      state.order = order;
      placeChildren(
        state.tbody,
        state.scroller ? [state.before, ...rows, state.after] : rows
      );
    }
  }

  private _row(t: TaskRun, notebooks: boolean, mapped: boolean): HTMLElement {
    const tr = h(
      'tr',
      {
        class: this._selected === t.name ? 'jp-mod-selected' : undefined,
        'data-task': t.name,
        'data-status': t.status,
        'data-reused': t.reusedFrom ? 'true' : undefined,
        title: 'Show attempts and logs'
      },
      h('td', {}, t.name, this._snapshotTag(t.name)),
      h('td', {}, badge(t.status), this._reusedTag(t)),
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
    tr.onclick = () => this.select(t.name);
    return tr;
  }

  /** "reused from exec_ab12": a link to the execution that computed it. */
  private _reusedTag(t: TaskRun): HTMLElement | null {
    const origin = t.reusedFrom;
    if (!origin) {
      return null;
    }
    const link = h(
      'a',
      {
        href: '#',
        class: 'jp-Taskflow-reusedLink',
        'data-reused-from': origin,
        title: `Reused: its result was computed in ${origin} (open it)`
      },
      `reused from ${shortId(origin)}`
    );
    link.onclick = ev => {
      ev.preventDefault();
      ev.stopPropagation();
      this.actions.openExecution(origin, t.name);
    };
    return h('span', { class: 'jp-Taskflow-reused' }, link);
  }

  /** A mapped task's counts: its histogram and "742/1000 completed · …". */
  private _instancesCell(t: TaskRun): HTMLElement {
    if (!this._isMapped(t)) {
      return h('td', {});
    }
    const c = mappedCounts(t);
    const def = this._def(t.name);
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
    const def = this._def(task);
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

  /**
   * The selected task's detail, rebuilt only when something it shows
   * changed; each log keeps its scroll position, or its tail while it grows.
   */
  private _updateLogs(exec: Execution): void {
    const run = this._selected
      ? exec.tasks.find(t => t.name === this._selected)
      : undefined;
    if (run && this._isMapped(run)) {
      this._logsKey = '';
      this._logsBox.replaceChildren(this._instanceList(exec, run));
      return;
    }
    const attempts = run ? this._memory.attempts(run) : [];
    const key = JSON.stringify([
      this._selected,
      this._logsVersion,
      run?.status,
      run?.traceback,
      run?.reusedFrom,
      attempts,
      this._selectedAttempt
    ]);
    if (key === this._logsKey) {
      return;
    }
    this._logsKey = key;
    const scrolls = new Map<string, { top: number; atEnd: boolean }>();
    this._logsBox.querySelectorAll<HTMLElement>('pre[data-log]').forEach(el =>
      scrolls.set(el.dataset.log ?? '', {
        top: el.scrollTop,
        atEnd: el.scrollTop + el.clientHeight >= el.scrollHeight - 4
      })
    );
    this._logsBox.replaceChildren(this._logsView(run, attempts));
    const live = !!run && !TERMINAL_TASK.has(run.status);
    this._logsBox.querySelectorAll<HTMLElement>('pre[data-log]').forEach(el => {
      const was = scrolls.get(el.dataset.log ?? '');
      el.scrollTop =
        was && !(live && was.atEnd) ? was.top : live ? el.scrollHeight : 0;
    });
    if (this._selectedAttempt !== null) {
      this._logsBox
        .querySelector(`[data-attempt="${this._selectedAttempt}"]`)
        ?.scrollIntoView({ block: 'nearest' });
    }
  }

  private _logsView(
    run: TaskRun | undefined,
    attempts: Attempt[]
  ): HTMLElement {
    if (!this._selected) {
      return h(
        'div',
        { class: 'jp-TaskflowExecution-logs jp-Taskflow-empty' },
        'Select a task to see its attempts and logs.'
      );
    }
    const params = this._params(this._selected);
    const snapshot = snapshotText(params);
    const live = !!run && !TERMINAL_TASK.has(run.status) && !!run.startTime;
    const parts: Array<Node | null> = [
      h(
        'h3',
        {},
        `Logs of ${this._selected}`,
        live
          ? h(
              'span',
              {
                class: 'jp-TaskflowExecution-following',
                title: `Read again every ${LOG_POLL_MS / 1000} s while the task runs`
              },
              '● following'
            )
          : null
      ),
      snapshot
        ? h(
            'p',
            {
              class: 'jp-TaskflowExecution-snapshot',
              title: `${String(params?.callable ?? '')} from the stored snapshot ${String(params?.snapshot)}: what the notebook defined when it registered or scheduled the workflow`
            },
            snapshot
          )
        : null,
      run ? this._reusedNote(run) : null,
      attempts.length ? attemptTable(attempts, this._selectedAttempt) : null
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
    } else if (!logs.attempts.length && !attempts.length) {
      parts.push(
        h(
          'p',
          { class: 'jp-Taskflow-empty' },
          run?.reusedFrom
            ? 'It did not run here: its logs are in the execution it was reused from.'
            : 'No output captured.'
        )
      );
    } else {
      parts.push(...this._attemptLogs(logs.attempts, attempts));
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
      {
        class: 'jp-TaskflowExecution-logs',
        'data-task': this._selected,
        'data-live': live ? 'true' : undefined
      },
      ...parts
    );
  }

  /** Each attempt's heading (status, duration, error) and its output. */
  private _attemptLogs(logs: TaskLogAttempt[], attempts: Attempt[]): Node[] {
    const byNumber = new Map(attempts.map(a => [a.attempt, a]));
    const numbers = [
      ...new Set([...attempts.map(a => a.attempt), ...logs.map(l => l.attempt)])
    ].sort((a, b) => a - b);
    const out: Node[] = [];
    for (const n of numbers) {
      const a = byNumber.get(n);
      const log = logs.find(l => l.attempt === n);
      const section = h(
        'section',
        {
          class: `jp-TaskflowExecution-attempt${this._selectedAttempt === n ? ' jp-mod-selected' : ''}`,
          'data-attempt': n,
          'data-status': a?.status
        },
        h(
          'h4',
          {},
          `Attempt ${n}`,
          a ? ` · ${a.status}` : '',
          a ? attemptDuration(a) : ''
        )
      );
      if (log?.stdout) {
        section.appendChild(
          h(
            'pre',
            { class: 'jp-TaskflowExecution-stdout', 'data-log': `${n}:out` },
            log.stdout
          )
        );
      }
      if (log?.stderr) {
        section.appendChild(
          h(
            'pre',
            { class: 'jp-TaskflowExecution-stderr', 'data-log': `${n}:err` },
            log.stderr
          )
        );
      }
      if (!log?.stdout && !log?.stderr) {
        section.appendChild(
          h(
            'p',
            { class: 'jp-Taskflow-empty' },
            a?.status === 'running' ? 'No output yet.' : 'No output.'
          )
        );
      }
      out.push(section);
    }
    return out;
  }

  /** A reused task's note: computed elsewhere, with a link there. */
  private _reusedNote(run: TaskRun): HTMLElement | null {
    const tag = this._reusedTag(run);
    return tag
      ? h(
          'p',
          { class: 'jp-TaskflowExecution-reusedNote' },
          'Its result was reused, not computed again: ',
          tag
        )
      : null;
  }

  private _runs: { exec: Execution; byName: Map<string, TaskRun> } | null =
    null;
  private _allDefs: {
    all: GraphTask[];
    byName: Map<string, GraphTask>;
  } | null = null;
  private _delay: number | null = null;
  private _tableFrame: number | null = null;
  private _lastRender = 0;
  private _scrolledAt = -Infinity;
  private _specVersion = 0;
  private _budgetEnd = 0;
  private _unfinished = false;
  private _seen: Execution | undefined;
  private _changed = false;
  private _defs: {
    spec: TaskDefinition[] | null;
    byName: Map<string, TaskDefinition>;
  } | null = null;
  private _memory = new AttemptMemory();
  private _gantt: Gantt;
  private _built = false;
  private _headerBox = h('div');
  private _barBox = h('div', { class: 'jp-TaskflowStatusBar', hidden: true });
  private _problemBox = h('div');
  private _graphBox = h('div');
  private _tableBox = h('div');
  private _logsBox = h('div');
  private _graphState: {
    layout: DagLayout;
    spec: TaskDefinition[] | null;
    svg: SVGElement;
    nodes: Map<
      string,
      { sig: string; g: SVGElement; run?: TaskRun; selected: boolean }
    >;
  } | null = null;
  private _tableState: {
    columns: string;
    tbody: HTMLElement;
    rows: Map<
      string,
      { sig: string; tr: HTMLElement; run: TaskRun; selected: boolean }
    >;
    order: string;
    /** The scrolling box of a virtual table (VIRTUAL_FROM tasks on), else null. */
    scroller: HTMLElement | null;
    before: HTMLElement;
    after: HTMLElement;
  } | null = null;
  private _tableTop = 0;
  private _logsKey = '';
  private _logsVersion = 0;
  private _logTimer: number | null = null;
  private _selectedAttempt: number | null = null;
  private _attemptsSeen = new Map<string, number>();
  private _unsubscribe: () => void;
  private _unsubscribeInstances: () => void;
  private _counts: Throttle;
  private _instances: InstanceList | null = null;
  private _askedCounts = new Set<string>();
  private _timer: number;
  // One marker id per view: a url(#id) into a hidden tab's SVG draws nothing.
  private _markerId = newMarkerId();
  private _frame: number | null = null;
  private _spec: TaskDefinition[] | null = null;
  private _dag: {
    key: string;
    tasks: GraphTask[];
    layout: DagLayout;
  } | null = null;
  private _all: {
    spec: TaskDefinition[] | null;
    count: number;
    tasks: GraphTask[];
  } | null = null;
  private _loaded = false;
  private _error: string | null = null;
  private _actionError: string | null = null;
  private _busy: string | null = null;
  private _lastStatus: string | undefined;
  private _ticks = 0;
  /** An ended execution's re-read (abandoned attempts) that is due. */
  private _rereadDue = false;
  private _selected: string | null = null;
  private _selectedStatus: string | undefined;
  private _logs: Logs = { state: 'loading' };
  private _askedOutput = new Set<string>();
}

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

/** " · 2.5 s" (ticking while it runs), or nothing before it started. */
function attemptDuration(a: Attempt): Node | string {
  if (a.status === 'running' && a.startTime) {
    const span = h('span', {}, ' · ', elapsedSpan(a.startTime));
    return span;
  }
  return a.duration !== null ? ` · ${formatDuration(a.duration)}` : '';
}

/** Every attempt of a task: #, status, start, end, duration, error. */
function attemptTable(
  attempts: Attempt[],
  selected: number | null
): HTMLElement {
  return h(
    'table',
    { class: 'jp-TaskflowExecution-attempts' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['Attempt', 'Status', 'Started', 'Ended', 'Duration', 'Error'].map(
          c => h('th', {}, c)
        )
      )
    ),
    h(
      'tbody',
      {},
      ...attempts.map(a =>
        h(
          'tr',
          {
            'data-attempt-row': a.attempt,
            'data-status': a.status,
            class: selected === a.attempt ? 'jp-mod-selected' : undefined
          },
          h('td', {}, String(a.attempt)),
          h('td', {}, badge(a.status)),
          h('td', {}, formatTime(a.startTime)),
          h('td', {}, a.status === 'running' ? '' : formatTime(a.endTime)),
          h(
            'td',
            { class: 'jp-TaskflowExecution-duration' },
            a.status === 'running' && a.startTime
              ? elapsedSpan(a.startTime)
              : formatDuration(a.duration)
          ),
          h('td', { class: 'jp-TaskflowExecution-error' }, a.error ?? '')
        )
      )
    )
  );
}
