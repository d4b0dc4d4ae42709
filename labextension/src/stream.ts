/**
 * The /ws event stream, kept alive: after a drop it reconnects with
 * `since=<last seq seen>` so the server replays exactly what was missed
 * (SPEC section 4), backing off exponentially while the server is away.
 * The socket is created through an injected factory, so this module has no
 * DOM dependency and is tested with a fake socket.
 */

import type { TaskflowEvent } from './model';

/** The part of the browser WebSocket API the stream uses. */
export interface SocketLike {
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  close(): void;
}

export type StreamStatus = 'connecting' | 'open' | 'closed';

export interface EventStreamOptions {
  /** The socket URL for a connection that replays events after `since`. */
  url: (since: number | null) => string;
  /** Opens a socket (in the browser: `new settings.WebSocket(url)`). */
  connect: (url: string) => SocketLike;
  /** Highest seq already applied (asked at each reconnect). */
  lastSeq: () => number | null;
  onEvent: (event: TaskflowEvent) => void;
  /** Called on every successful open; `resumed` is false for the first one. */
  onOpen?: (resumed: boolean) => void;
  onStatus?: (status: StreamStatus) => void;
  minDelayMs?: number;
  maxDelayMs?: number;
  schedule?: (fn: () => void, ms: number) => unknown;
  cancel?: (handle: unknown) => void;
}

export class EventStream {
  constructor(options: EventStreamOptions) {
    this._opts = options;
    this._delay = options.minDelayMs ?? 500;
  }

  get status(): StreamStatus {
    return this._status;
  }

  /** Number of successful opens so far. */
  get opens(): number {
    return this._opens;
  }

  start(): void {
    this._stopped = false;
    if (!this._socket && this._timer === null) {
      this._open();
    }
  }

  stop(): void {
    this._stopped = true;
    if (this._timer !== null) {
      (this._opts.cancel ?? (h => clearTimeout(h as number)))(this._timer);
      this._timer = null;
    }
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onclose = null;
      socket.close();
    }
    this._setStatus('closed');
  }

  private _open(): void {
    this._setStatus('connecting');
    // The first connection follows live events only (the views load a REST
    // snapshot when it opens); later ones resume from the last seq seen.
    const since = this._opens > 0 ? this._opts.lastSeq() : null;
    let socket: SocketLike;
    try {
      socket = this._opts.connect(this._opts.url(since));
    } catch (err) {
      console.warn('TaskFlow: cannot open /ws', err);
      this._retryLater();
      return;
    }
    this._socket = socket;
    socket.onopen = () => {
      this._delay = this._opts.minDelayMs ?? 500;
      const resumed = this._opens > 0;
      this._opens += 1;
      this._setStatus('open');
      this._opts.onOpen?.(resumed);
    };
    socket.onmessage = msg => this._receive(msg.data);
    socket.onerror = () => {
      // onclose follows and handles reconnecting.
    };
    socket.onclose = () => {
      if (this._socket === socket) {
        this._socket = null;
        this._retryLater();
      }
    };
  }

  private _receive(data: unknown): void {
    let parsed: unknown;
    try {
      parsed = typeof data === 'string' ? JSON.parse(data) : data;
    } catch {
      console.warn('TaskFlow: ignoring a /ws message that is not JSON');
      return;
    }
    // One Event per message (the OpenAPI document's /ws route).
    if (parsed && typeof parsed === 'object' && 'event' in parsed) {
      this._opts.onEvent(parsed as TaskflowEvent);
    }
  }

  private _retryLater(): void {
    this._setStatus('closed');
    if (this._stopped) {
      return;
    }
    const delay = this._delay;
    this._delay = Math.min(this._delay * 2, this._opts.maxDelayMs ?? 10000);
    const schedule = this._opts.schedule ?? ((fn, ms) => setTimeout(fn, ms));
    this._timer = schedule(() => {
      this._timer = null;
      if (!this._stopped) {
        this._open();
      }
    }, delay);
  }

  private _setStatus(status: StreamStatus): void {
    if (status !== this._status) {
      this._status = status;
      this._opts.onStatus?.(status);
    }
  }

  private _opts: EventStreamOptions;
  private _socket: SocketLike | null = null;
  private _timer: unknown = null;
  private _delay: number;
  private _opens = 0;
  private _stopped = false;
  private _status: StreamStatus = 'closed';
}
