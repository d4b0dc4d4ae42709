/**
 * The frontend's one connection to TaskFlow: a shared model, the /ws stream
 * feeding it, and REST snapshots loaded when the stream (re)opens. Views read
 * from `model` and call actions here; they do not talk to the server on their
 * own, except for per-view detail (one execution, its logs).
 */

import { ServerConnection } from '@jupyterlab/services';

import * as api from './api';
import { TaskflowEvent, TaskflowModel } from './model';
import { EventStream, SocketLike, StreamStatus } from './stream';

export interface ServiceState {
  /** True until the first snapshot arrived (or failed). */
  loading: boolean;
  /** The last snapshot error, cleared by a successful refresh. */
  error: string | null;
  stream: StreamStatus;
}

/** A read of one execution in flight, and the one queued after it. */
interface Load {
  done: Promise<void>;
  again: Promise<void> | null;
}

export class TaskflowService {
  readonly model = new TaskflowModel();
  readonly settings: ServerConnection.ISettings;

  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings ?? ServerConnection.makeSettings();
    this._stream = new EventStream({
      url: since => api.eventsUrl(since, {}, this.settings),
      connect: url => new this.settings.WebSocket(url) as unknown as SocketLike,
      lastSeq: () => this.model.lastSeq,
      onEvent: ev => this._onEvent(ev),
      onOpen: () => void this.refresh(),
      onStatus: status => this._setState({ stream: status }),
      maxDelayMs: 15000
    });
  }

  get state(): ServiceState {
    return this._state;
  }

  /** Open the stream (idempotent); the first open loads a snapshot. */
  start(): void {
    if (!this._started) {
      this._started = true;
      this._stream.start();
      // Do not wait for the socket to show something: a REST snapshot now,
      // another one when the socket opens (merges are idempotent).
      void this.refresh();
    }
  }

  dispose(): void {
    this._stream.stop();
  }

  /** Reload workflows and recent executions over REST. */
  async refresh(): Promise<void> {
    try {
      const [workflows, executions] = await Promise.all([
        api.listWorkflows(this.settings),
        api.listExecutions({ limit: 50 }, this.settings)
      ]);
      this.model.setWorkflows(workflows);
      this.model.upsertExecutions(executions);
      this._setState({ loading: false, error: null });
    } catch (err) {
      this._setState({
        loading: false,
        error: err instanceof Error ? err.message : String(err)
      });
    }
  }

  /**
   * Re-read one execution (full detail) into the model. Reads asked for
   * while one is in flight (the view, its end, the stream's `execution_*`
   * event: a 5,000-task detail is megabytes to parse and merge) share one
   * more read after it, so none is answered by a response older than it.
   */
  loadExecution(id: string): Promise<void> {
    const load = this._loads.get(id);
    if (!load) {
      return this._load(id);
    }
    const again = () => this._load(id);
    load.again ??= load.done.then(again, again);
    return load.again;
  }

  private _load(id: string): Promise<void> {
    const load: Load = { done: Promise.resolve(), again: null };
    this._loads.set(id, load);
    load.done = (async () => {
      try {
        const exec = await api.getExecution(id, this.settings);
        this.model.upsertExecutions([exec]);
      } finally {
        if (this._loads.get(id) === load && !load.again) {
          this._loads.delete(id);
        }
      }
    })();
    return load.done;
  }

  /** Pause or resume a workflow's schedule; the model takes the answer. */
  async setPaused(id: string, paused: boolean): Promise<void> {
    const wf = paused
      ? await api.pauseSchedule(id, this.settings)
      : await api.resumeSchedule(id, this.settings);
    this.model.upsertWorkflow(wf);
  }

  /**
   * Re-read one workflow (its schedule state: next run, last scheduled run)
   * into the model; concurrent calls for one id cost one request.
   */
  async reloadWorkflow(id: string): Promise<void> {
    if (this._reloadingWorkflow.has(id)) {
      return;
    }
    this._reloadingWorkflow.add(id);
    try {
      this.model.upsertWorkflow(
        await api.getWorkflow(id, undefined, this.settings)
      );
    } catch {
      // deleted meanwhile, or the server is away: the next refresh tells
    } finally {
      this._reloadingWorkflow.delete(id);
    }
  }

  /** Subscribe to state changes (loading, error, stream status). */
  onStateChanged(fn: (state: ServiceState) => void): () => void {
    this._stateListeners.add(fn);
    return () => {
      this._stateListeners.delete(fn);
    };
  }

  /**
   * Call `fn` on every live event once the model applied it (a replayed
   * event already applied is not passed on); returns an unsubscribe function.
   */
  onEvent(fn: (ev: TaskflowEvent) => void): () => void {
    this._eventListeners.add(fn);
    return () => {
      this._eventListeners.delete(fn);
    };
  }

  /** Note an execution this page started (its end may notify). */
  noteStarted(id: string): void {
    for (const fn of [...this._startedListeners]) {
      fn(id);
    }
  }

  /** Call `fn` with each execution this page starts. */
  onStarted(fn: (id: string) => void): () => void {
    this._startedListeners.add(fn);
    return () => {
      this._startedListeners.delete(fn);
    };
  }

  private _onEvent(ev: TaskflowEvent): void {
    const id = ev.execution_id;
    const known = this.model.execution(id);
    if (!this.model.applyEvent(ev)) {
      return; // a replay of what was applied already
    }
    for (const fn of [...this._eventListeners]) {
      try {
        fn(ev);
      } catch (err) {
        console.error('TaskFlow: an event listener failed', err);
      }
    }
    if (!known || ev.event.startsWith('execution_')) {
      // A new execution (perhaps started elsewhere) or a finished one: read
      // its full detail (task list, errors) once.
      void this.loadExecution(id).catch(() => undefined);
    }
    // A scheduled workflow's new execution moved its next run on (and its
    // finish is its last scheduled run's status).
    const wf = ev.workflow ? this.model.workflow(ev.workflow) : undefined;
    const finished =
      ev.event.startsWith('execution_') && ev.event !== 'execution_started';
    if (wf?.schedule && (!known || finished)) {
      void this.reloadWorkflow(wf.id);
    }
    // An unknown workflow (registered elsewhere): reload the list, once per id
    // so that executions of a deleted workflow do not reload on every event.
    if (
      ev.workflow &&
      !this.model.workflow(ev.workflow) &&
      !this._askedWorkflows.has(ev.workflow)
    ) {
      this._askedWorkflows.add(ev.workflow);
      void this._reloadWorkflows();
    }
  }

  /** Reload the workflow list; a burst of calls costs at most two requests. */
  private async _reloadWorkflows(): Promise<void> {
    if (this._reloading) {
      this._reloadAgain = true;
      return;
    }
    this._reloading = true;
    try {
      do {
        this._reloadAgain = false;
        this.model.setWorkflows(await api.listWorkflows(this.settings));
      } while (this._reloadAgain);
    } catch {
      // the next refresh reports errors
    } finally {
      this._reloading = false;
    }
  }

  private _setState(patch: Partial<ServiceState>): void {
    this._state = { ...this._state, ...patch };
    for (const fn of [...this._stateListeners]) {
      fn(this._state);
    }
  }

  private _stream: EventStream;
  private _loads = new Map<string, Load>();
  private _started = false;
  private _reloading = false;
  private _reloadAgain = false;
  private _askedWorkflows = new Set<string>();
  private _reloadingWorkflow = new Set<string>();
  private _state: ServiceState = {
    loading: true,
    error: null,
    stream: 'closed'
  };
  private _stateListeners = new Set<(state: ServiceState) => void>();
  private _eventListeners = new Set<(ev: TaskflowEvent) => void>();
  private _startedListeners = new Set<(id: string) => void>();
}
