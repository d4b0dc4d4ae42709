import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  doneText,
  histogram,
  instanceOfEvent,
  isMapped,
  MappedCounts,
  mappedCounts,
  mappedText,
  newerCounts,
  Throttle
} from '../mapped';
import { EventName, Execution, TaskflowEvent, TaskflowModel } from '../model';

let seq = 0;
function ev(
  event: EventName,
  extra: Partial<TaskflowEvent> = {},
  execution = 'exec_1'
): TaskflowEvent {
  seq += 1;
  return {
    event,
    seq,
    workflow_id: execution,
    execution_id: execution,
    workflow: 'wf',
    task: null,
    status: 'running',
    timestamp: `2024-01-01T00:00:${String(seq % 60).padStart(2, '0')}.000Z`,
    ...extra
  };
}

function counts(patch: Partial<MappedCounts>): MappedCounts {
  return {
    total: 1000,
    pending: 0,
    running: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
    ...patch
  };
}

function snapshot(mapped: MappedCounts | null, status = 'running'): Execution {
  return {
    id: 'exec_1',
    workflowId: 'wf',
    status: 'running',
    tasks: [
      { name: 'list', status: 'completed' },
      { name: 'work', status: status as 'running', mapped }
    ]
  };
}

function work(model: TaskflowModel) {
  return model.execution('exec_1')?.tasks.find(t => t.name === 'work');
}

describe('instance events in the model', () => {
  it('never change the mapped task’s own status', () => {
    const model = new TaskflowModel();
    model.upsertExecutions([snapshot(counts({ pending: 1000 }))]);
    model.applyEvent(ev('task_started', { task: 'work', map_index: 3 }));
    model.applyEvent(
      ev('task_failed', { task: 'work', map_index: 3, error: 'ValueError' })
    );
    model.applyEvent(ev('task_completed', { task: 'work', map_index: 4 }));
    const t = work(model);
    assert.equal(t?.status, 'running');
    assert.equal(t?.error, undefined);
    // the counts are the snapshot's until the next one
    assert.deepEqual(t?.mapped, counts({ pending: 1000 }));
  });

  it('the task’s own events (no map_index) still do', () => {
    const model = new TaskflowModel();
    model.upsertExecutions([snapshot(null, 'pending')]);
    model.applyEvent(ev('task_started', { task: 'work' }));
    assert.equal(work(model)?.status, 'running');
    model.applyEvent(
      ev('task_failed', {
        task: 'work',
        error: '2 of 1000 instances failed; first: [17] ValueError: x'
      })
    );
    assert.equal(work(model)?.status, 'failed');
  });

  it('reach instance listeners, not every listener', () => {
    const model = new TaskflowModel();
    model.upsertExecutions([snapshot(counts({ pending: 1000 }))]);
    const heard: Array<[string, string, number]> = [];
    let renders = 0;
    model.subscribeInstances((id, task, i) => heard.push([id, task, i]));
    model.subscribe(() => (renders += 1));
    for (let i = 0; i < 50; i++) {
      assert.equal(
        model.applyEvent(ev('task_completed', { task: 'work', map_index: i })),
        true
      );
    }
    assert.equal(heard.length, 50);
    assert.deepEqual(heard[7], ['exec_1', 'work', 7]);
    assert.equal(renders, 0, 'a running execution did not change');
  });

  it('an instance event of an unknown execution makes it known as running', () => {
    const model = new TaskflowModel();
    let renders = 0;
    model.subscribe(() => (renders += 1));
    model.applyEvent(
      ev('task_started', { task: 'work', map_index: 0 }, 'exec_new')
    );
    const exec = model.execution('exec_new');
    assert.equal(exec?.status, 'running');
    assert.deepEqual(exec?.tasks, []);
    assert.equal(renders, 1);
  });

  it('replayed instance events are ignored like any other', () => {
    const model = new TaskflowModel();
    let heard = 0;
    model.subscribeInstances(() => (heard += 1));
    const e = ev('task_completed', { task: 'work', map_index: 1 });
    model.applyEvent(e);
    assert.equal(model.applyEvent(e), false);
    assert.equal(heard, 1);
  });

  it('an older snapshot’s counts do not replace newer ones', () => {
    const model = new TaskflowModel();
    const newer = counts({
      completed: 700,
      failed: 3,
      running: 2,
      pending: 295
    });
    const older = counts({ completed: 500, running: 2, pending: 498 });
    model.upsertExecutions([snapshot(newer)]);
    model.upsertExecutions([snapshot(older)]);
    assert.deepEqual(work(model)?.mapped, newer);
    model.upsertExecutions([snapshot(null)]);
    assert.deepEqual(work(model)?.mapped, newer, 'null is older than counts');
    const done = counts({ completed: 990, failed: 10 });
    model.upsertExecutions([snapshot(done, 'failed')]);
    assert.deepEqual(work(model)?.mapped, done);
  });
});

describe('mapped helpers', () => {
  it('instanceOfEvent reads map_index, 0 included', () => {
    assert.deepEqual(
      instanceOfEvent(ev('task_started', { task: 'w', map_index: 0 })),
      { task: 'w', mapIndex: 0 }
    );
    assert.equal(instanceOfEvent(ev('task_started', { task: 'w' })), null);
  });

  it('isMapped by definition or by snapshot', () => {
    assert.equal(isMapped({ name: 'a' }, { map_over: 'l' }), true);
    assert.equal(isMapped({ name: 'a', mapped: null }), true);
    assert.equal(isMapped({ name: 'a' }, { map_over: null }), false);
    assert.equal(isMapped({ name: 'a' }), false);
  });

  it('counts in words and as done/total', () => {
    const c = counts({ completed: 742, failed: 3, running: 20, pending: 235 });
    assert.equal(doneText(c), '742/1000');
    assert.equal(
      mappedText(c),
      '742/1000 completed · 3 failed · 20 running · 235 pending'
    );
    assert.equal(mappedText(null, 'list'), 'waiting for list');
    assert.equal(mappedText(counts({ total: 0 })), 'no instances');
    assert.equal(doneText(null), '');
    assert.deepEqual(
      mappedCounts({ mapped: { total: 2, completed: 1 } as MappedCounts }),
      {
        total: 2,
        pending: 0,
        running: 0,
        completed: 1,
        failed: 0,
        cancelled: 0
      }
    );
    assert.equal(mappedCounts({ mapped: null }), null);
  });

  it('newerCounts prefers more settled, then fewer pending', () => {
    const a = counts({ completed: 10, pending: 990 });
    const b = counts({ completed: 10, running: 5, pending: 985 });
    assert.equal(newerCounts(a, b), b);
    assert.equal(newerCounts(b, a), b);
    assert.equal(newerCounts(null, a), a);
    assert.equal(newerCounts(a, null), a);
    // another total is another expansion (a resumed execution): take it
    const other = counts({ total: 5, pending: 5 });
    assert.equal(newerCounts(a, other), other);
  });
});

describe('histogram', () => {
  const sum = (segs: Array<{ width: number }>) =>
    segs.reduce((acc, s) => acc + s.width, 0);

  it('segments in status order, proportional, adding up to the width', () => {
    const c = counts({ completed: 500, running: 100, failed: 0, pending: 400 });
    const segs = histogram(c, 100, 0);
    assert.deepEqual(
      segs.map(s => s.status),
      ['completed', 'running', 'pending']
    );
    assert.deepEqual(
      segs.map(s => s.width),
      [50, 10, 40]
    );
    assert.deepEqual(
      segs.map(s => s.x),
      [0, 50, 60]
    );
    assert.equal(sum(segs), 100);
  });

  it('one failure in 1000 stays visible', () => {
    const c = counts({ completed: 999, failed: 1 });
    const segs = histogram(c, 124, 2);
    const failed = segs.find(s => s.status === 'failed');
    assert.ok(failed && failed.width >= 2, JSON.stringify(segs));
    assert.ok(Math.abs(sum(segs) - 124) < 1e-9);
    assert.ok(segs.every(s => s.x >= 0 && s.x + s.width <= 124 + 1e-9));
  });

  it('nothing to draw before the expansion or for no instances', () => {
    assert.deepEqual(histogram(null, 100), []);
    assert.deepEqual(histogram(counts({ total: 0 }), 100), []);
  });

  it('every status at once still fits', () => {
    const c = counts({
      completed: 1,
      running: 1,
      failed: 1,
      pending: 1,
      cancelled: 1,
      total: 5
    });
    const segs = histogram(c, 6, 2);
    assert.equal(segs.length, 5);
    assert.ok(Math.abs(sum(segs) - 6) < 1e-9);
  });
});

describe('Throttle', () => {
  function fake() {
    let now = 0;
    const timers: Array<{ at: number; fn: () => void }> = [];
    return {
      now: () => now,
      schedule: (fn: () => void, ms: number) => {
        const t = { at: now + ms, fn };
        timers.push(t);
        return () => timers.splice(timers.indexOf(t), 1);
      },
      advance(ms: number) {
        now += ms;
        for (const t of [...timers].filter(t => t.at <= now)) {
          timers.splice(timers.indexOf(t), 1);
          t.fn();
        }
      },
      pending: () => timers.length
    };
  }

  it('runs at once, then once per interval however many requests', () => {
    const clock = fake();
    let calls = 0;
    const t = new Throttle(() => (calls += 1), 500, clock.now, clock.schedule);
    assert.equal(t.request(), true);
    assert.equal(calls, 1);
    for (let i = 0; i < 100; i++) {
      t.request();
      clock.advance(3);
    }
    // 300 ms in: one trailing call is due at 500 ms, none ran yet
    assert.equal(calls, 1);
    assert.equal(clock.pending(), 1);
    clock.advance(200);
    assert.equal(calls, 2);
    clock.advance(1000);
    assert.equal(calls, 2, 'no request, no call');
  });

  it('dispose drops the trailing call', () => {
    const clock = fake();
    let calls = 0;
    const t = new Throttle(() => (calls += 1), 500, clock.now, clock.schedule);
    t.request();
    t.request();
    t.dispose();
    clock.advance(1000);
    assert.equal(calls, 1);
  });
});
