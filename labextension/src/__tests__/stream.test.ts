import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { TaskflowEvent, TaskflowModel } from '../model';
import { EventStream, SocketLike } from '../stream';

class FakeSocket implements SocketLike {
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: unknown) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  closed = false;
  constructor(readonly url: string) {}
  close(): void {
    this.closed = true;
  }
  open(): void {
    this.onopen?.({});
  }
  send(ev: Partial<TaskflowEvent>): void {
    this.onmessage?.({ data: JSON.stringify(ev) });
  }
  drop(): void {
    this.onclose?.({});
  }
}

function setup() {
  const model = new TaskflowModel();
  const sockets: FakeSocket[] = [];
  const timers: Array<{ fn: () => void; ms: number }> = [];
  const opens: boolean[] = [];
  const stream = new EventStream({
    url: since => (since === null ? '/ws' : `/ws?since=${since}`),
    connect: url => {
      const s = new FakeSocket(url);
      sockets.push(s);
      return s;
    },
    lastSeq: () => model.lastSeq,
    onEvent: ev => model.applyEvent(ev),
    onOpen: resumed => opens.push(resumed),
    minDelayMs: 100,
    maxDelayMs: 400,
    schedule: (fn, ms) => timers.push({ fn, ms }),
    cancel: () => undefined
  });
  const fire = () => timers.shift()?.fn();
  return { model, sockets, timers, opens, stream, fire };
}

const base = { execution_id: 'exec_1', workflow_id: 'exec_1', workflow: 'wf' };

describe('EventStream', () => {
  it('reconnects with since=<last seq> after a drop', () => {
    const { model, sockets, opens, stream, fire } = setup();
    stream.start();
    assert.equal(sockets[0].url, '/ws');
    sockets[0].open();
    sockets[0].send({ ...base, event: 'execution_started', seq: 7 });
    sockets[0].send({ ...base, event: 'task_started', task: 'A', seq: 8 });
    sockets[0].drop();
    assert.equal(stream.status, 'closed');
    fire();
    assert.equal(sockets[1].url, '/ws?since=8');
    sockets[1].open();
    // The server replays from 9; an overlapping 8 would be ignored.
    sockets[1].send({ ...base, event: 'task_started', task: 'A', seq: 8 });
    sockets[1].send({ ...base, event: 'task_completed', task: 'A', seq: 9 });
    sockets[1].send({ ...base, event: 'execution_completed', seq: 10 });
    assert.equal(model.lastSeq, 10);
    assert.equal(model.execution('exec_1')?.status, 'completed');
    assert.deepEqual(opens, [false, true]);
  });

  it('backs off exponentially up to the maximum, then resets', () => {
    const { sockets, timers, stream, fire } = setup();
    stream.start();
    const delays: number[] = [];
    for (let i = 0; i < 4; i++) {
      sockets[sockets.length - 1].drop();
      delays.push(timers[0].ms);
      fire();
    }
    assert.deepEqual(delays, [100, 200, 400, 400]);
    sockets[sockets.length - 1].open();
    sockets[sockets.length - 1].drop();
    assert.equal(timers[0].ms, 100);
  });

  it('stop() closes the socket and does not reconnect', () => {
    const { sockets, timers, stream } = setup();
    stream.start();
    sockets[0].open();
    stream.stop();
    assert.ok(sockets[0].closed);
    sockets[0].drop();
    assert.equal(timers.length, 0);
    assert.equal(stream.status, 'closed');
  });

  it('ignores messages that are not JSON events', () => {
    const { model, sockets, stream } = setup();
    stream.start();
    sockets[0].open();
    const warn = console.warn;
    console.warn = () => undefined;
    try {
      sockets[0].onmessage?.({ data: 'not json' });
    } finally {
      console.warn = warn;
    }
    sockets[0].onmessage?.({ data: JSON.stringify({ hello: 1 }) });
    assert.equal(model.lastSeq, null);
  });
});
