/**
 * Mapped tasks (SPEC section 11) as the frontend sees them: a task run once
 * per item of its `map_over` upstream's list, each run an *instance*.
 *
 * A mapped task is drawn as one node whose counts (`mapped`) come from REST
 * snapshots only. Its instances' /ws events are the ordinary task events plus
 * a `map_index`; they are not the task's own state changes (the task itself
 * gets `task_started` when it expands and `task_completed`/`task_failed`
 * when every instance ended), so the model never merges them into the task.
 * Views that show counts or instances instead re-read them, at most every
 * `REFRESH_MS` (`Throttle`), which keeps a 1,000-instance map from costing a
 * render per event. Pure functions, no DOM, unit-tested under node.
 */

import type {
  InstancePage,
  MappedCounts,
  TaskflowEvent,
  TaskInstance,
  TaskRun
} from './model';

export type { InstancePage, MappedCounts, TaskInstance };

export type InstanceStatus = Exclude<keyof MappedCounts, 'total'>;

/** The histogram's segments, in this order. */
export const INSTANCE_STATUSES: readonly InstanceStatus[] = [
  'completed',
  'running',
  'failed',
  'pending',
  'cancelled'
];

/** The instance list's status filter: '' is every instance. */
export type InstanceFilter = '' | InstanceStatus;

export const INSTANCE_FILTERS: ReadonlyArray<{
  value: InstanceFilter;
  label: string;
}> = [
  { value: '', label: 'all' },
  { value: 'failed', label: 'failed' },
  { value: 'running', label: 'running' },
  { value: 'completed', label: 'completed' },
  { value: 'pending', label: 'pending' },
  { value: 'cancelled', label: 'cancelled' }
];

/** How often at most a view re-reads counts or instances while a map runs. */
export const REFRESH_MS = 500;

/** The instance an event is about, or null for the task's own events. */
export function instanceOfEvent(
  ev: Pick<TaskflowEvent, 'task' | 'map_index'>
): { task: string; mapIndex: number } | null {
  const i = ev.map_index;
  return ev.task && typeof i === 'number'
    ? { task: ev.task, mapIndex: i }
    : null;
}

/** The upstream a task definition maps over, or null. */
export function mapOver(def: object | null | undefined): string | null {
  const m = (def as { map_over?: unknown } | null | undefined)?.map_over;
  return typeof m === 'string' && m ? m : null;
}

/** Whether a task is mapped: by its definition, or by what a snapshot said. */
export function isMapped(
  run: Pick<TaskRun, 'name'> & { mapped?: MappedCounts | null },
  def?: object | null
): boolean {
  return !!mapOver(def) || run.mapped !== undefined;
}

/** The counts of a run, normalised (missing statuses are 0), or null. */
export function mappedCounts(
  run: { mapped?: Partial<MappedCounts> | null } | undefined
): MappedCounts | null {
  const m = run?.mapped;
  if (!m || typeof m.total !== 'number') {
    return null;
  }
  const n = (v: unknown) => (typeof v === 'number' && v > 0 ? v : 0);
  return {
    total: n(m.total),
    pending: n(m.pending),
    running: n(m.running),
    completed: n(m.completed),
    failed: n(m.failed),
    cancelled: n(m.cancelled)
  };
}

/** Instances that ended: they never go back within one execution. */
export function settled(c: MappedCounts): number {
  return c.completed + c.failed + c.cancelled;
}

/**
 * The newer of two views of one task's counts. Snapshots can arrive out of
 * order; the one with more settled instances (then fewer pending) is newer,
 * and a tie keeps `next`.
 */
export function newerCounts(
  current: MappedCounts | null | undefined,
  next: MappedCounts | null | undefined
): MappedCounts | null {
  if (!current || !next) {
    return next ?? current ?? null;
  }
  if (current.total !== next.total) {
    return next;
  }
  const [a, b] = [settled(current), settled(next)];
  if (a !== b) {
    return b > a ? next : current;
  }
  return next.pending <= current.pending ? next : current;
}

/** "742/1000" (completed of total); "" before the task expanded. */
export function doneText(c: MappedCounts | null): string {
  return c ? `${c.completed}/${c.total}` : '';
}

/**
 * The counts in words: "742/1000 completed · 3 failed · 20 running · 235
 * pending"; "waiting for <upstream>" before it expanded; "no instances"
 * for an empty list.
 */
export function mappedText(
  c: MappedCounts | null,
  upstream?: string | null
): string {
  if (!c) {
    return upstream ? `waiting for ${upstream}` : 'not expanded yet';
  }
  if (!c.total) {
    return 'no instances';
  }
  const parts = [`${c.completed}/${c.total} completed`];
  for (const status of ['failed', 'cancelled', 'running', 'pending'] as const) {
    if (c[status]) {
      parts.push(`${c[status]} ${status}`);
    }
  }
  return parts.join(' · ');
}

export interface HistogramSegment {
  status: InstanceStatus;
  count: number;
  /** Offset and width in the histogram's units (e.g. pixels). */
  x: number;
  width: number;
}

/**
 * The counts as adjacent segments across `width`, in `INSTANCE_STATUSES`
 * order, each in proportion to its count but at least `minWidth` wide (one
 * failure among 1,000 stays visible). Widths always add up to `width`.
 */
export function histogram(
  c: MappedCounts | null,
  width: number,
  minWidth = 2
): HistogramSegment[] {
  const present = c
    ? INSTANCE_STATUSES.filter(s => c[s] > 0).map(s => ({
        status: s,
        count: c[s]
      }))
    : [];
  const sum = present.reduce((acc, p) => acc + p.count, 0);
  if (!sum || width <= 0) {
    return [];
  }
  const floor = Math.min(minWidth, width / present.length);
  // Give every segment its floor, share the rest in proportion.
  const rest = width - floor * present.length;
  const widths = present.map(p => floor + (rest * p.count) / sum);
  const out: HistogramSegment[] = [];
  let x = 0;
  present.forEach((p, i) => {
    const w = i === present.length - 1 ? width - x : widths[i];
    out.push({ ...p, x, width: w });
    x += w;
  });
  return out;
}

/**
 * Calls `fn` at most once per `intervalMs`: a call inside the interval is
 * deferred to its end (one trailing call however many came). `now` and
 * `schedule` are injectable for tests.
 */
export class Throttle {
  constructor(
    private readonly fn: () => void,
    private readonly intervalMs: number = REFRESH_MS,
    private readonly now: () => number = () => Date.now(),
    private readonly schedule: (fn: () => void, ms: number) => () => void = (
      fn,
      ms
    ) => {
      const t = setTimeout(fn, ms);
      return () => clearTimeout(t);
    }
  ) {}

  /** Ask for a call; returns true when it ran at once. */
  request(): boolean {
    if (this._cancel) {
      return false; // a trailing call is already due
    }
    const wait = this._last + this.intervalMs - this.now();
    if (wait <= 0) {
      this._run();
      return true;
    }
    this._cancel = this.schedule(() => {
      this._cancel = null;
      this._run();
    }, wait);
    return false;
  }

  dispose(): void {
    this._cancel?.();
    this._cancel = null;
  }

  private _run(): void {
    this._last = this.now();
    this.fn();
  }

  private _last = -Infinity;
  private _cancel: (() => void) | null = null;
}
