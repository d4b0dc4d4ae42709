/**
 * A JupyterLab notification (Lab 4's own `Notification` of
 * @jupyterlab/apputils) when an execution ends that the user cares about:
 * one this page started (Run, Retry, Run with parameters, a notebook run),
 * one started from a notebook (`trigger: notebook`), or a scheduled one. A
 * failure always notifies (the setting `notifyOnFailure`, on by default); a
 * completion only with `notifyOnCompletion`. Only ends seen live on `/ws`
 * notify: a snapshot of an old failure does not.
 *
 * The decision is the pure `notification()`; `ExecutionNotifier` feeds it
 * the service's events and posts through an injected `post`, so that it is
 * tested without Lab.
 */

import type { Execution, TaskflowEvent } from './model';
import { countsText, taskCounts } from './model';

export interface NotifySettings {
  notifyOnFailure: boolean;
  notifyOnCompletion: boolean;
}

export const DEFAULT_NOTIFY: NotifySettings = {
  notifyOnFailure: true,
  notifyOnCompletion: false
};

export interface NotificationSpec {
  kind: 'error' | 'success';
  message: string;
  executionId: string;
}

/** Why the user cares about an execution, or null when they need not hear of it. */
export function interest(
  exec: Pick<Execution, 'id' | 'trigger'>,
  startedHere: ReadonlySet<string>
): 'started' | 'scheduled' | 'notebook' | null {
  if (startedHere.has(exec.id)) {
    return 'started';
  }
  if (exec.trigger === 'schedule') {
    return 'scheduled';
  }
  return exec.trigger === 'notebook' ? 'notebook' : null;
}

/** The notification an event calls for, or null. */
export function notification(
  ev: Pick<TaskflowEvent, 'event' | 'execution_id'>,
  exec: Execution,
  name: string,
  startedHere: ReadonlySet<string>,
  settings: NotifySettings
): NotificationSpec | null {
  const failed = ev.event === 'execution_failed';
  const completed = ev.event === 'execution_completed';
  if (
    (!failed && !completed) ||
    (failed && !settings.notifyOnFailure) ||
    (completed && !settings.notifyOnCompletion) ||
    !interest(exec, startedHere)
  ) {
    return null;
  }
  const counts = countsText(taskCounts(exec));
  const scheduled = exec.trigger === 'schedule' ? 'Scheduled run of ' : '';
  if (completed) {
    return {
      kind: 'success',
      executionId: exec.id,
      message: `${scheduled}${name} completed: ${counts}`
    };
  }
  const task = exec.tasks.find(t => t.status === 'failed');
  const why = task
    ? ` — ${task.name}${task.error ? `: ${task.error}` : ''}`
    : '';
  return {
    kind: 'error',
    executionId: exec.id,
    message: `${scheduled}${name} failed: ${counts}${why}`
  };
}

export interface NotifierOptions {
  /** The execution as the page knows it now. */
  known(id: string): Execution | undefined;
  /** The execution read again (its detail: every task's error, its trigger). */
  load(id: string): Promise<Execution | undefined>;
  workflowName(id: string): string;
  settings(): Promise<NotifySettings>;
  post(spec: NotificationSpec): void;
}

export class ExecutionNotifier {
  constructor(private readonly options: NotifierOptions) {}

  /** An execution this page started: its end notifies. */
  started(id: string): void {
    this._started.add(id);
  }

  /** Feed one live event (already applied to the model). */
  async onEvent(ev: TaskflowEvent): Promise<void> {
    if (ev.event !== 'execution_failed' && ev.event !== 'execution_completed') {
      return;
    }
    if (this._done.has(ev.execution_id)) {
      return;
    }
    this._done.add(ev.execution_id);
    const known = this.options.known(ev.execution_id);
    if (known?.trigger && !interest(known, this._started)) {
      return; // someone else's: no need to read it
    }
    const exec = await this.options.load(ev.execution_id).catch(() => known);
    if (!exec) {
      return;
    }
    const spec = notification(
      ev,
      exec,
      this.options.workflowName(exec.workflowId),
      this._started,
      await this.options.settings()
    );
    if (spec) {
      this.options.post(spec);
    }
  }

  private _started = new Set<string>();
  private _done = new Set<string>();
}
