/**
 * Attempts and their times, without DOM: what the execution view's timeline
 * (Gantt) and a task's attempt history are drawn from.
 *
 * A task's attempts reach the browser by two roads, as everything else: the
 * detail's `history` (every finished attempt: start, end, duration, status,
 * error) and the row itself (the current attempt, live from `/ws`). Events
 * alone lose an attempt once the next one starts (the row then describes the
 * new one), so `AttemptMemory` keeps what it saw of each attempt; the
 * history, when a snapshot brings it, wins. The result is the same whatever
 * order the facts came in.
 */

import type { Execution, TaskRun } from './model';
import { TERMINAL_TASK } from './model';

/** One attempt of a task, as far as it is known. */
export interface Attempt {
  attempt: number;
  /** The attempt's own outcome: `running` while it runs. */
  status: string;
  startTime: string | null;
  endTime: string | null;
  duration: number | null;
  error: string | null;
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v ? v : null;
}

function num(v: unknown): number | null {
  return typeof v === 'number' && isFinite(v) ? v : null;
}

/** The detail's `history` entries as attempts (numbered from 1 when unnumbered). */
export function historyAttempts(task: Pick<TaskRun, 'history'>): Attempt[] {
  return (task.history ?? []).map((h, i) => ({
    attempt: num(h.attempt) ?? i + 1,
    status: str(h.status) ?? 'failed',
    startTime: str(h.startTime),
    endTime: str(h.endTime),
    duration: num(h.duration),
    error: str(h.error)
  }));
}

/**
 * The attempt the row describes (the current or last one), or null before
 * the task started. A reused task's row is the origin's attempt: it did not
 * run here, so it has none.
 */
export function currentAttempt(task: TaskRun): Attempt | null {
  if (!task.startTime || task.reusedFrom || task.status === 'skipped') {
    return null;
  }
  const running = !TERMINAL_TASK.has(task.status);
  return {
    attempt: task.attempts || 1,
    status: task.status === 'retrying' ? 'failed' : task.status,
    startTime: task.startTime,
    endTime:
      running && task.status !== 'retrying' ? null : (task.endTime ?? null),
    duration: running ? null : (task.duration ?? null),
    // While it runs (or once it completed) the row's error is the attempt
    // before's, which the task_retrying event left there.
    error:
      task.status === 'failed' || task.status === 'retrying'
        ? (task.error ?? null)
        : null
  };
}

/** Fill the gaps of `a` (the better source) from `b`, attempt by attempt. */
function fill(a: Attempt, b: Attempt): Attempt {
  return {
    attempt: a.attempt,
    status: a.status,
    startTime: a.startTime ?? b.startTime,
    endTime: a.endTime ?? b.endTime,
    duration: a.duration ?? b.duration,
    error: a.error ?? b.error
  };
}

/** Attempts by number, oldest first: `primary` wins where both know one. */
export function mergeAttempts(
  primary: Attempt[],
  secondary: Attempt[]
): Attempt[] {
  const byNumber = new Map<number, Attempt>();
  for (const a of secondary) {
    byNumber.set(a.attempt, a);
  }
  for (const a of primary) {
    const old = byNumber.get(a.attempt);
    byNumber.set(a.attempt, old ? fill(a, old) : a);
  }
  return [...byNumber.values()].sort((x, y) => x.attempt - y.attempt);
}

/** Every attempt of a task that the history and the row tell. */
export function attemptsOf(task: TaskRun): Attempt[] {
  if (task.reusedFrom) {
    return [];
  }
  const current = currentAttempt(task);
  return mergeAttempts(historyAttempts(task), current ? [current] : []);
}

/**
 * What the view saw of each attempt, so that an attempt replaced by the next
 * one (from events, before a snapshot brings the history) keeps its bar.
 */
export class AttemptMemory {
  /** Remember the attempts every task of `exec` shows now. */
  observe(exec: Pick<Execution, 'tasks'>): void {
    for (const t of exec.tasks) {
      if (this._observed.get(t.name) === t) {
        continue; // the model keeps unchanged tasks as the same objects
      }
      this._observed.set(t.name, t);
      const seen = this._seen.get(t.name);
      const now = attemptsOf(t);
      if (now.length || seen) {
        this._seen.set(t.name, mergeAttempts(now, seen ?? []));
      }
    }
  }

  /** The task's attempts: what it shows now, then what was seen before. */
  attempts(task: TaskRun): Attempt[] {
    if (task.reusedFrom) {
      return [];
    }
    const seen = this._seen.get(task.name) ?? [];
    const cached = this._cache.get(task);
    if (cached && cached.seen === seen) {
      return cached.attempts;
    }
    const attempts = this._attempts(task, seen);
    this._cache.set(task, { seen, attempts });
    return attempts;
  }

  private _attempts(task: TaskRun, seen: Attempt[]): Attempt[] {
    const now = attemptsOf(task);
    const merged = mergeAttempts(now, seen);
    // An attempt seen running whose successor started has ended: it failed
    // (the next attempt is a retry), at the latest when the successor began.
    return merged.map((a, i) => {
      const next = merged[i + 1];
      return a.status === 'running' && next
        ? { ...a, status: 'failed', endTime: a.endTime ?? next.startTime }
        : a;
    });
  }

  private _seen = new Map<string, Attempt[]>();
  private _observed = new Map<string, TaskRun>();
  private _cache = new WeakMap<
    TaskRun,
    { seen: Attempt[]; attempts: Attempt[] }
  >();
}

/** Milliseconds of an ISO time, or NaN. */
export function ms(iso: string | null | undefined): number {
  return iso ? Date.parse(iso) : NaN;
}

/**
 * The time span the timeline covers: from the execution's start (or its
 * first attempt) to its end, or `now` while it runs (or when an attempt
 * outlasts the recorded end). Always at least one second wide.
 */
export function timeRange(
  exec: Pick<Execution, 'startTime' | 'endTime' | 'status'>,
  attempts: Attempt[][],
  now: number
): { start: number; end: number } {
  let start = ms(exec.startTime);
  let end = ms(exec.endTime);
  for (const list of attempts) {
    for (const a of list) {
      const s = ms(a.startTime);
      const e = a.endTime ? ms(a.endTime) : now;
      if (!isNaN(s) && (isNaN(start) || s < start)) {
        start = s;
      }
      if (!isNaN(e) && (isNaN(end) || e > end)) {
        end = e;
      }
    }
  }
  if (isNaN(start)) {
    start = now;
  }
  if (isNaN(end) || !exec.endTime) {
    end = Math.max(isNaN(end) ? now : end, now);
  }
  return { start, end: Math.max(end, start + 1000) };
}

/** A bar's left and width in percent of the range (at least 0.3% wide). */
export function barGeometry(
  a: Attempt,
  range: { start: number; end: number },
  now: number
): { left: number; width: number } | null {
  const s = ms(a.startTime);
  if (isNaN(s)) {
    return null;
  }
  const e = a.endTime ? ms(a.endTime) : now;
  const span = range.end - range.start;
  const left = ((s - range.start) / span) * 100;
  const width = Math.max(((Math.max(e, s) - s) / span) * 100, 0.3);
  return {
    left: Math.min(Math.max(left, 0), 100),
    width: Math.min(width, 100 - Math.min(Math.max(left, 0), 100))
  };
}

/** The axis' tick positions: about `count` round steps over the range. */
export function ticks(
  range: { start: number; end: number },
  count = 5
): Array<{ at: number; seconds: number }> {
  const span = (range.end - range.start) / 1000;
  const raw = span / count;
  const steps = [
    0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600,
    7200, 14400, 43200, 86400
  ];
  const step = steps.find(s => s >= raw) ?? steps[steps.length - 1];
  const out: Array<{ at: number; seconds: number }> = [];
  for (let t = 0; t <= span + 1e-9; t += step) {
    out.push({ at: (t / span) * 100, seconds: t });
  }
  return out;
}
