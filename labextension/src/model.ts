/**
 * The TaskFlow vocabulary as TypeScript types, and the one place where the
 * frontend's view of run state changes: `TaskflowModel`.
 *
 * The REST and /ws shapes are not written here: they are aliases of
 * `generated/openapi.ts`, which `jlpm gen:types` generates from the served
 * OpenAPI document (`tests/test_api_types.py` fails when it is stale). Only
 * the model's own view, what snapshots and events said so far, is defined
 * here, from those shapes.
 *
 * State reaches the browser by two roads: REST snapshots (GET /executions,
 * GET /executions/{id}) and /ws events. They can arrive in either order — a
 * snapshot may be older than an event already applied, and a replay after a
 * reconnect may repeat events. Rather than trusting arrival order, every merge
 * is monotonic: an execution only moves forward through
 * pending -> running -> terminal, and a task through (attempt, phase). Applying
 * the same facts in any order therefore gives the same state, and replays are
 * harmless. This module has no DOM or JupyterLab imports so it is unit-tested
 * under plain node.
 */

import type { components, operations } from './generated/openapi';
import { instanceOfEvent, newerCounts } from './mapped';

type Schemas = components['schemas'];

/** When the server runs a workflow on its own (SPEC section 12). */
export type Schedule = Schemas['Schedule'];
/** A registered workflow definition (GET /workflows, GET /workflows/{id}). */
export type Workflow = Schemas['Workflow'];
/** The last time slots were missed while no server ran. */
export type MissedSlots = NonNullable<Schemas['Workflow']['missedSlots']>;
/** The request body of POST /workflows. */
export type WorkflowDefinition = Schemas['WorkflowDefinition'];
/** One task of a workflow definition. */
export type TaskDefinition = Schemas['TaskDefinition'];
/** An execution of GET /executions and of the POST answers. */
export type ExecutionSummary = Schemas['Execution'];
/** An execution of GET /executions/{id}, with full task detail. */
export type ExecutionDetail = Schemas['ExecutionDetail'];
export type ExecutionRequest = Schemas['ExecutionRequest'];
/** One /ws message (SPEC section 4); an instance's events carry `map_index`. */
export type TaskflowEvent = Schemas['Event'];
/** A mapped task's instances by status, with `total` (SPEC section 11). */
export type MappedCounts = Schemas['MappedCounts'];
/** One instance of GET /executions/{id}/tasks/{name}/instances. */
export type TaskInstance = Schemas['Instance'];
/** A page of instances, ordered by `mapIndex`, with the task's counts. */
export type InstancePage = Schemas['InstancePage'];
export type EventName = TaskflowEvent['event'];
/** GET /executions/{id}/tasks/{task}/logs */
export type TaskLogs = Schemas['TaskLogs'];
export type TaskLogAttempt = TaskLogs['attempts'][number];
/** One parameter of GET /taskflow/notebooks/parameters (papermill's convention). */
export type NotebookParameter =
  operations['getNotebookParameters']['responses'][200]['content']['application/json'][number];
/** A `task_progress` event's count: code cells executed of code cells. */
export type TaskProgress = NonNullable<TaskflowEvent['progress']>;

/** One revision of a workflow (GET /workflows/{id}/revisions), newest first. */
export type WorkflowRevision = Schemas['Revision'];
/** Two executions of one workflow side by side (GET /executions/{a}/compare/{b}). */
export type Comparison = Schemas['Comparison'];
/** One side of a compared task; null when that execution has no such task. */
export type ComparedTask = Schemas['ComparedTask'];
export type ComparedTaskRow = Comparison['tasks'][number];
export type ComparedParam = Comparison['params'][number];

export type ExecutionStatus = ExecutionSummary['status'];

/**
 * The server's task statuses plus `retrying`, a frontend-only phase between a
 * failed attempt and the next one (the `task_retrying` event).
 */
export type TaskStatus = Schemas['Task']['status'] | 'retrying';

/**
 * A task as the model knows it: a snapshot's `Task` or `TaskDetail`, or the
 * fields the events about it carried so far. `progress` is the frontend's
 * own: the last `task_progress` of the current attempt (null once a new
 * attempt starts); no snapshot carries it.
 */
export type TaskRun = Partial<
  Omit<Schemas['TaskDetail'], 'name' | 'status' | 'mapped'>
> & {
  name: string;
  status: TaskStatus;
  progress?: TaskProgress | null;
  /**
   * A mapped task's instances by status (snapshots only; SPEC section 11):
   * null until its upstream's list is known, absent on other tasks.
   */
  mapped?: MappedCounts | null;
};

/**
 * An execution as the model knows it: a snapshot (`ExecutionSummary` or
 * `ExecutionDetail`), or what the events about it said so far.
 */
export type Execution = Partial<
  Omit<ExecutionDetail, 'id' | 'workflowId' | 'status' | 'tasks'>
> & {
  id: string;
  workflowId: string;
  status: ExecutionStatus;
  tasks: TaskRun[];
};

export const TERMINAL_EXECUTION: ReadonlySet<string> = new Set([
  'completed',
  'failed',
  'cancelled'
]);

export const TERMINAL_TASK: ReadonlySet<string> = new Set([
  'completed',
  'failed',
  'skipped',
  'cancelled'
]);

const EXECUTION_RANK: Record<string, number> = {
  pending: 0,
  running: 1,
  completed: 2,
  failed: 2,
  cancelled: 2
};

const TASK_RANK: Record<string, number> = {
  pending: 0,
  running: 1,
  retrying: 2,
  completed: 3,
  failed: 3,
  skipped: 3,
  cancelled: 3
};

/** True when `next` may replace `current` (never moves an execution backwards). */
export function executionAdvances(current: string, next: string): boolean {
  return (EXECUTION_RANK[next] ?? 0) >= (EXECUTION_RANK[current] ?? 0);
}

/** True when task state `next` is not older than `current`. */
export function taskAdvances(current: TaskRun, next: TaskRun): boolean {
  const a = current.attempts;
  const b = next.attempts;
  if (a !== undefined && b !== undefined && a !== b) {
    return b > a;
  }
  if (current.status === 'retrying' && next.status === 'running') {
    // The next attempt started (an event without an attempt number).
    return true;
  }
  return (TASK_RANK[next.status] ?? 0) >= (TASK_RANK[current.status] ?? 0);
}

/** Merge two views of one task: the newer one wins, known fields are kept. */
export function mergeTask(current: TaskRun, next: TaskRun): TaskRun {
  const merged = taskAdvances(current, next)
    ? { ...current, ...withoutUndefined(next) }
    : // Older state: it may still carry detail (result, traceback) we lack.
      { ...withoutUndefined(next), ...current };
  // Progress belongs to an attempt: a later attempt's (none yet: null)
  // replaces it, and within one attempt cells only get done, so the larger
  // count wins whatever order the facts arrive in.
  const a = current.progress;
  const b = next.progress;
  const [ca, na] = [current.attempts, next.attempts];
  if (ca !== undefined && na !== undefined && ca !== na) {
    merged.progress = (na > ca ? b : a) ?? null;
  } else if (a && b) {
    merged.progress = b.done >= a.done ? b : a;
  }
  // Counts only grow more settled: an older snapshot's do not win.
  if (current.mapped !== undefined || next.mapped !== undefined) {
    merged.mapped = newerCounts(current.mapped, next.mapped);
  }
  return merged;
}

/** True when two views of a task say the same (values, not identities). */
export function sameTask(a: TaskRun, b: TaskRun): boolean {
  return sameJson(a, b);
}

/**
 * Deep equality of JSON values (key order aside). Not `JSON.stringify` of
 * both: a re-read of 5,000 tasks compares every task's attempt history, and
 * strings built to be compared cost that read most of its time (and garbage).
 */
export function sameJson(x: unknown, y: unknown): boolean {
  if (x === y) {
    return true;
  }
  if (
    x === null ||
    y === null ||
    typeof x !== 'object' ||
    typeof y !== 'object' ||
    Array.isArray(x) !== Array.isArray(y)
  ) {
    return false;
  }
  const a = x as Record<string, unknown>;
  const b = y as Record<string, unknown>;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) {
    return false;
  }
  for (const k of keys) {
    if (!(k in b) || !sameJson(a[k], b[k])) {
      return false;
    }
  }
  return true;
}

/**
 * Each task list's positions by name, kept with the list: an event finds
 * its task in a run of thousands without scanning it (hundreds a second).
 */
const POSITIONS = new WeakMap<readonly TaskRun[], Map<string, number>>();

function positions(tasks: readonly TaskRun[]): Map<string, number> {
  let at = POSITIONS.get(tasks);
  if (!at) {
    at = new Map(tasks.map((t, i) => [t.name, i]));
    POSITIONS.set(tasks, at);
  }
  return at;
}

/** Merge two views of one execution (snapshot or event-built). */
export function mergeExecution(current: Execution, next: Execution): Execution {
  const newer = executionAdvances(current.status, next.status);
  const base = newer
    ? { ...current, ...withoutUndefined(next) }
    : { ...withoutUndefined(next), ...current };
  const known = current.tasks ?? [];
  const incoming = next.tasks ?? [];
  if (incoming.length <= 4 && known.length > incoming.length) {
    // An event's one task into a run of thousands: patch its place (the
    // order is the longer list's, new names last, as below) rather than
    // rebuild every task's entry per event.
    const tasks = known.slice();
    const at = positions(known);
    let added = false;
    for (const t of incoming) {
      const i = at.get(t.name);
      if (i !== undefined) {
        tasks[i] = mergeTask(tasks[i], t);
      } else {
        tasks.push(t);
        added = true;
      }
    }
    if (!added) {
      POSITIONS.set(tasks, at); // the same names in the same places
    }
    return { ...base, tasks };
  }
  const tasks = new Map<string, TaskRun>();
  for (const t of current.tasks ?? []) {
    tasks.set(t.name, t);
  }
  for (const t of next.tasks ?? []) {
    const old = tasks.get(t.name);
    const merged = old ? mergeTask(old, t) : t;
    // A snapshot repeating what is known keeps the task object: the views
    // skip unchanged objects, so re-reading 5,000 tasks redraws none.
    tasks.set(t.name, old && sameTask(old, merged) ? old : merged);
  }
  // Keep the order of whichever view lists more tasks (the snapshot usually).
  const order = (
    (next.tasks ?? []).length >= (current.tasks ?? []).length
      ? (next.tasks ?? [])
      : (current.tasks ?? [])
  ).map(t => t.name);
  const listed = new Set(order);
  for (const name of tasks.keys()) {
    if (!listed.has(name)) {
      order.push(name);
    }
  }
  return { ...base, tasks: order.map(name => tasks.get(name) as TaskRun) };
}

/** The execution-level status an `execution_*` event announces. */
function executionStatusOf(event: string): ExecutionStatus | null {
  switch (event) {
    case 'execution_started':
      return 'running';
    case 'execution_completed':
      return 'completed';
    case 'execution_failed':
      return 'failed';
    case 'execution_cancelled':
      return 'cancelled';
    default:
      return null;
  }
}

/** The task state a `task_*` event announces, or null for other events. */
export function taskFromEvent(ev: TaskflowEvent): TaskRun | null {
  if (!ev.task || !ev.event.startsWith('task_') || instanceOfEvent(ev)) {
    // An instance's event is not its mapped task's own state change.
    return null;
  }
  const base: TaskRun = { name: ev.task, status: 'pending' };
  if (ev.attempt !== undefined) {
    base.attempts = ev.attempt;
  }
  switch (ev.event) {
    case 'task_started':
      return {
        ...base,
        status: 'running',
        startTime: ev.timestamp,
        endTime: null,
        error: null
      };
    case 'task_progress':
      return ev.progress
        ? { ...base, status: 'running', progress: ev.progress }
        : null;
    case 'task_completed':
      return {
        ...base,
        status: 'completed',
        endTime: ev.timestamp,
        duration: ev.duration ?? undefined
      };
    case 'task_failed':
      return {
        ...base,
        status: 'failed',
        endTime: ev.timestamp,
        duration: ev.duration ?? undefined,
        error: ev.error ?? undefined
      };
    case 'task_retrying':
      return { ...base, status: 'retrying', error: ev.error ?? undefined };
    case 'task_skipped':
      return { ...base, status: 'skipped', reason: ev.reason ?? undefined };
    default:
      return null;
  }
}

/** The partial execution an event describes (to be merged into state). */
export function executionFromEvent(ev: TaskflowEvent): Execution | null {
  if (!ev.execution_id) {
    // Not an Event (the socket's JSON is only checked for an `event` key).
    return null;
  }
  const status = executionStatusOf(ev.event);
  const task = taskFromEvent(ev);
  const exec: Execution = {
    id: ev.execution_id,
    workflowId: ev.workflow,
    // A task (or instance) event proves the execution is at least running.
    status: status ?? (task || instanceOfEvent(ev) ? 'running' : 'pending'),
    tasks: task ? [task] : []
  };
  if (ev.event === 'execution_started') {
    exec.startTime = ev.timestamp;
  } else if (status) {
    exec.endTime = ev.timestamp;
  }
  return exec;
}

export type Listener = (model: TaskflowModel) => void;

/** An event of one instance of a mapped task (it carries `map_index`). */
export type InstanceListener = (
  executionId: string,
  task: string,
  mapIndex: number,
  ev: TaskflowEvent
) => void;

/**
 * Workflows and executions as the frontend knows them. Views subscribe and
 * re-render; they never edit the maps themselves.
 */
export class TaskflowModel {
  /** Highest /ws `seq` applied; reconnects ask for `since=lastSeq`. */
  lastSeq: number | null = null;

  get workflows(): Workflow[] {
    return [...this._workflows.values()];
  }

  workflow(id: string): Workflow | undefined {
    return this._workflows.get(id);
  }

  execution(id: string): Execution | undefined {
    return this._executions.get(id);
  }

  /** Executions newest first (by start or creation time, then insertion order). */
  recentExecutions(limit = 50): Execution[] {
    const all = [...this._executions.values()];
    const order = new Map(all.map((e, i) => [e.id, i]));
    all.sort((a, b) => {
      // A pending execution has no startTime yet; its createdAt places it.
      const ta = a.startTime ?? a.createdAt ?? '';
      const tb = b.startTime ?? b.createdAt ?? '';
      if (ta !== tb) {
        return ta < tb ? 1 : -1;
      }
      return (order.get(b.id) ?? 0) - (order.get(a.id) ?? 0);
    });
    return all.slice(0, limit);
  }

  setWorkflows(list: Workflow[]): void {
    this._workflows = new Map(list.map(w => [w.id, w]));
    this._emit();
  }

  upsertWorkflow(def: Workflow): void {
    this._workflows.set(def.id, def);
    this._emit();
  }

  /** Merge REST snapshots (GET /executions or GET /executions/{id}). */
  upsertExecutions(list: Execution[]): void {
    for (const exec of list) {
      this._merge(exec);
    }
    this._emit();
  }

  /**
   * Apply one /ws event. Events with a `seq` not above `lastSeq` were already
   * applied (replay overlap) and are ignored. Returns true when state changed.
   */
  applyEvent(ev: TaskflowEvent): boolean {
    if (typeof ev.seq === 'number') {
      if (this.lastSeq !== null && ev.seq <= this.lastSeq) {
        return false;
      }
      this.lastSeq = ev.seq;
    }
    const exec = executionFromEvent(ev);
    if (!exec) {
      return false;
    }
    const before = this._executions.get(exec.id)?.status;
    this._merge(exec);
    const instance = instanceOfEvent(ev);
    if (instance) {
      // Thousands of these: only their own listeners hear them (views that
      // show counts re-read them, throttled), unless the execution is new
      // or its status moved.
      for (const fn of [...this._instanceListeners]) {
        fn(exec.id, instance.task, instance.mapIndex, ev);
      }
      if (before === this._executions.get(exec.id)?.status) {
        return true;
      }
    }
    this._emit();
    return true;
  }

  /** Call `fn` on every instance event; returns an unsubscribe function. */
  subscribeInstances(fn: InstanceListener): () => void {
    this._instanceListeners.add(fn);
    return () => {
      this._instanceListeners.delete(fn);
    };
  }

  /** Call `fn` on every change; returns an unsubscribe function. */
  subscribe(fn: Listener): () => void {
    this._listeners.add(fn);
    return () => {
      this._listeners.delete(fn);
    };
  }

  private _merge(exec: Execution): void {
    const old = this._executions.get(exec.id);
    this._executions.set(exec.id, old ? mergeExecution(old, exec) : exec);
  }

  private _emit(): void {
    for (const fn of [...this._listeners]) {
      try {
        fn(this);
      } catch (err) {
        console.error('TaskFlow: a model listener failed', err);
      }
    }
  }

  private _workflows = new Map<string, Workflow>();
  private _executions = new Map<string, Execution>();
  private _listeners = new Set<Listener>();
  private _instanceListeners = new Set<InstanceListener>();
}

/** The statuses an execution's counts and its segmented bar show, in order. */
export const COUNTED_STATUSES = [
  'completed',
  'skipped',
  'failed',
  'cancelled',
  'running',
  'pending'
] as const;

export type CountedStatus = (typeof COUNTED_STATUSES)[number];

/**
 * An execution's tasks by status; `done` is completed + skipped (a skipped
 * task is settled: its branch was not taken). A retrying task counts as
 * running (it is between attempts, not finished). The panel list, the
 * execution view and the segmented bar all read these, so they agree.
 */
export type TaskCounts = Record<CountedStatus, number> & {
  done: number;
  total: number;
};

export function taskCounts(exec: Pick<Execution, 'tasks'>): TaskCounts {
  const counts: TaskCounts = {
    completed: 0,
    skipped: 0,
    failed: 0,
    cancelled: 0,
    running: 0,
    pending: 0,
    done: 0,
    total: 0
  };
  for (const t of exec.tasks ?? []) {
    const status: CountedStatus =
      t.status === 'retrying'
        ? 'running'
        : (COUNTED_STATUSES as readonly string[]).includes(t.status)
          ? (t.status as CountedStatus)
          : 'pending';
    counts[status] += 1;
    counts.total += 1;
  }
  counts.done = counts.completed + counts.skipped;
  return counts;
}

/** "1 task", "3 tasks". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * The counts as one line: "3/8 completed · 3 skipped · 1 failed · 1 running"
 * (what ran and succeeded, then every other status that has a task: a skip is
 * not a success). An execution without tasks says "no tasks".
 */
export function countsText(c: TaskCounts): string {
  if (!c.total) {
    return 'no tasks';
  }
  const parts = [`${c.completed}/${c.total} completed`];
  for (const status of ['skipped', 'failed', 'cancelled', 'running'] as const) {
    if (c[status]) {
      parts.push(`${c[status]} ${status}`);
    }
  }
  return parts.join(' · ');
}

/**
 * A duration, written the same way in every view: "<1 ms", "340 ms",
 * "2.5 s", "12 s", "3 min 4 s", "1 h 2 min".
 */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '';
  }
  if (seconds < 0.0005) {
    return '<1 ms';
  }
  if (seconds < 0.9995) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 9.95) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 59.5) {
    return `${Math.round(seconds)} s`;
  }
  const total = Math.round(seconds);
  if (total < 3600) {
    return `${Math.floor(total / 60)} min ${total % 60} s`;
  }
  const m = Math.floor(total / 60);
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function withoutUndefined<T extends object>(obj: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (v !== undefined) {
      (out as Record<string, unknown>)[k] = v;
    }
  }
  return out;
}

/** "09:05" or "09:05:07" (seconds only when there are some): local, 24 h. */
export function clockText(d: Date, seconds = d.getSeconds() !== 0): string {
  const two = (n: number) => String(n).padStart(2, '0');
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`;
  return seconds ? `${hm}:${two(d.getSeconds())}` : hm;
}

function sameDay(a: Date, b: Date): boolean {
  return a.toDateString() === b.toDateString();
}

/**
 * A local time of day relative to `now`: "14:05:00" today, "tomorrow
 * 02:30:00", else "2024-01-05 02:30:00".
 */
export function dayClockText(d: Date, now: Date, seconds = true): string {
  const clock = clockText(d, seconds);
  if (sameDay(d, now)) {
    return clock;
  }
  const tomorrow = new Date(now.getTime());
  tomorrow.setDate(tomorrow.getDate() + 1);
  if (sameDay(d, tomorrow)) {
    return `tomorrow ${clock}`;
  }
  const two = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${clock}`;
}

/** How far ahead: "in 12 s", "in 3 min", "in 2 h 5 min", "in 3 d 4 h", "due now". */
export function untilText(seconds: number): string {
  if (!isFinite(seconds) || seconds < 0.5) {
    return 'due now';
  }
  const s = Math.round(seconds);
  if (s < 60) {
    return `in ${s} s`;
  }
  const m = Math.round(s / 60);
  if (m < 60) {
    return `in ${m} min`;
  }
  const h = Math.floor(m / 60);
  if (h < 24) {
    return m % 60 ? `in ${h} h ${m % 60} min` : `in ${h} h`;
  }
  const d = Math.floor(h / 24);
  return h % 24 ? `in ${d} d ${h % 24} h` : `in ${d} d`;
}

/** "next run 14:05:00 · in 3 min" (local time), or '' without a next run. */
export function nextRunText(
  iso: string | null | undefined,
  now: Date = new Date()
): string {
  if (!iso) {
    return '';
  }
  const at = new Date(iso);
  if (isNaN(at.getTime())) {
    return '';
  }
  return `next run ${dayClockText(at, now)} · ${untilText(
    (at.getTime() - now.getTime()) / 1000
  )}`;
}

/** What the panel shows of a workflow's schedule, or null without one. */
export interface ScheduleState {
  /** The schedule in words (the server's), e.g. "Every 10 minutes". */
  words: string;
  paused: boolean;
  /** `nextRunText`, '' while paused or when the server has none. */
  next: string;
}

export function scheduleState(
  wf: Pick<Workflow, 'schedule' | 'scheduleText' | 'paused' | 'nextRunTime'>,
  now: Date = new Date()
): ScheduleState | null {
  const sched = wf.schedule;
  if (!sched) {
    return null;
  }
  const words =
    wf.scheduleText ||
    (sched.cron
      ? `cron ${sched.cron}${sched.timezone ? ` (${sched.timezone})` : ''}`
      : `every ${plural(Number(sched.every ?? 0), 'second')}`);
  return {
    words,
    paused: !!wf.paused,
    next: wf.paused ? '' : nextRunText(wf.nextRunTime, now)
  };
}

/**
 * The missed-slots banner: "3 runs were missed while no server ran
 * (02:30 – 04:30); catch-up 'latest' ran 1 of them."
 */
export function missedSlotsText(
  m: MissedSlots,
  now: Date = new Date()
): string {
  const when = (iso: string | null, seconds: boolean) => {
    const d = iso ? new Date(iso) : null;
    return d && !isNaN(d.getTime()) ? dayClockText(d, now, seconds) : '';
  };
  // Minutes, unless that makes two different slots look the same.
  const seconds =
    !!m.first &&
    !!m.last &&
    m.first !== m.last &&
    when(m.first, false) === when(m.last, false);
  const first = when(m.first, seconds);
  const last = when(m.last, seconds);
  const range =
    first && last && first !== last ? `${first} – ${last}` : first || last;
  const one = m.count === 1;
  const head = `${one ? '1 run was' : `${m.count} runs were`} missed while no server ran${
    range ? ` (${range})` : ''
  }`;
  let tail: string;
  if (!m.fired) {
    tail = `catch-up '${m.catchup}' dropped ${one ? 'it' : 'them'}`;
  } else if (one) {
    tail = `catch-up '${m.catchup}' ran it`;
  } else if (m.fired >= m.count) {
    tail = `catch-up '${m.catchup}' ran all of them`;
  } else {
    tail = `catch-up '${m.catchup}' ran ${m.fired} of them`;
  }
  return `${head}; ${tail}.`;
}

/** The key a dismissed missed-slots banner is remembered by. */
export function missedSlotsKey(
  wf: Pick<Workflow, 'id' | 'missedSlots'>
): string | null {
  const m = wf.missedSlots;
  return m ? `${wf.id}@${m.detectedAt ?? m.last ?? ''}` : null;
}

/**
 * "runs snapshot sha256:abcd1234ef56…" for a task whose params name a stored
 * snapshot of a notebook function, else null.
 */
/**
 * What a task shows when an attempt was given up on (cancel, timeout) but its
 * code still runs in a thread (blocked in C), or null.
 */
export function abandonedText(
  task: Pick<TaskRun, 'abandoned'> | undefined
): string | null {
  const a = task?.abandoned;
  if (!a) {
    return null;
  }
  return `attempt ${a.attempt} given up on but still running in its thread`;
}

/**
 * Whether an ended execution should be read again to see its abandoned
 * attempts come and go: while one is shown, and for `watchMs` after the end
 * (the owner reports them with its heartbeat).
 */
export function watchAbandoned(
  exec: Pick<Execution, 'status' | 'endTime' | 'tasks'>,
  now: number,
  watchMs = 12000
): boolean {
  if (!TERMINAL_EXECUTION.has(exec.status)) {
    return false;
  }
  if (exec.tasks.some(t => t.abandoned)) {
    return true;
  }
  const end = exec.endTime ? Date.parse(exec.endTime) : NaN;
  return Number.isFinite(end) && now - end < watchMs;
}

export function snapshotText(
  params: Record<string, unknown> | null | undefined
): string | null {
  const snap = params?.snapshot;
  if (typeof snap !== 'string' || !snap) {
    return null;
  }
  const m = /^(sha256:)([0-9a-f]+)$/i.exec(snap);
  const short = m
    ? `${m[1]}${m[2].slice(0, 12)}${m[2].length > 12 ? '…' : ''}`
    : snap;
  return `runs snapshot ${short}`;
}

/** The badge an execution's trigger gets in lists and views, or null. */
export function triggerBadgeInfo(
  exec: Pick<Execution, 'trigger' | 'scheduledFor' | 'parentId'>,
  local: (iso: string) => string = iso => iso
): { text: string; title: string; trigger: string } | null {
  if (exec.trigger === 'schedule') {
    const slot = exec.scheduledFor;
    return {
      text: 'scheduled',
      trigger: 'schedule',
      title: slot
        ? `Scheduled run for the slot ${local(slot)} (${slot})`
        : 'Scheduled run'
    };
  }
  if (exec.trigger === 'retry') {
    return {
      text: 'retry',
      trigger: 'retry',
      title: exec.parentId ? `Retry of ${exec.parentId}` : 'Retry'
    };
  }
  return null;
}
