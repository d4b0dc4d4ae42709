import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { cellIndex, comparePair, gridColumns, gridRows, pick } from '../grid';
import { Execution, mergeExecution, TaskRun } from '../model';
import {
  DEFAULT_NOTIFY,
  ExecutionNotifier,
  NotificationSpec,
  notification
} from '../notify';
import {
  AttemptMemory,
  attemptsOf,
  barGeometry,
  ticks,
  timeRange
} from '../timeline';

const T0 = Date.parse('2026-12-01T10:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

function exec(
  id: string,
  start: number | null,
  tasks: TaskRun[] = []
): Execution {
  return {
    id,
    workflowId: 'wf',
    status: 'completed',
    startTime: start === null ? null : at(start),
    tasks
  };
}

describe('attempts', () => {
  it('are the history, then the attempt the row describes', () => {
    const t: TaskRun = {
      name: 'a',
      status: 'running',
      attempts: 2,
      startTime: at(5),
      error: 'boom', // the first attempt's, left by task_retrying
      history: [
        {
          attempt: 1,
          status: 'failed',
          startTime: at(1),
          endTime: at(2),
          duration: 1,
          error: 'boom'
        }
      ]
    };
    const a = attemptsOf(t);
    assert.deepEqual(
      a.map(x => [x.attempt, x.status, x.endTime, x.error]),
      [
        [1, 'failed', at(2), 'boom'],
        [2, 'running', null, null]
      ]
    );
  });

  it('a reused task has none here', () => {
    const t: TaskRun = {
      name: 'a',
      status: 'completed',
      attempts: 1,
      startTime: at(0),
      endTime: at(1),
      reusedFrom: 'exec_old'
    };
    assert.deepEqual(attemptsOf(t), []);
  });

  it('memory keeps an attempt the events replaced, whatever the order', () => {
    const first: TaskRun = {
      name: 'a',
      status: 'running',
      attempts: 1,
      startTime: at(1)
    };
    const second: TaskRun = {
      name: 'a',
      status: 'running',
      attempts: 2,
      startTime: at(3)
    };
    const m = new AttemptMemory();
    m.observe({ tasks: [first] });
    m.observe({ tasks: [second] });
    const seen = m.attempts(second);
    assert.deepEqual(
      seen.map(x => [x.attempt, x.status, x.endTime]),
      [
        [1, 'failed', at(3)],
        [2, 'running', null]
      ]
    );
    // The snapshot's history, when it comes, wins over what was inferred.
    const detailed: TaskRun = {
      ...second,
      history: [
        { attempt: 1, status: 'failed', startTime: at(1), endTime: at(2) }
      ]
    };
    m.observe({ tasks: [detailed] });
    assert.equal(m.attempts(detailed)[0].endTime, at(2));
  });
});

describe('timeline geometry', () => {
  it('spans the execution, to now while it runs', () => {
    const r = timeRange(
      { startTime: at(0), endTime: null, status: 'running' },
      [],
      T0 + 10_000
    );
    assert.deepEqual(r, { start: T0, end: T0 + 10_000 });
    const bar = barGeometry(
      {
        attempt: 1,
        status: 'running',
        startTime: at(5),
        endTime: null,
        duration: null,
        error: null
      },
      r,
      T0 + 10_000
    );
    assert.deepEqual(bar, { left: 50, width: 50 });
  });

  it('ticks are round steps from 0', () => {
    const t = ticks({ start: 0, end: 10_000 });
    assert.deepEqual(
      t.map(x => x.seconds),
      [0, 2, 4, 6, 8, 10]
    );
  });
});

describe('history grid', () => {
  const a = exec('exec_a', 1, [
    { name: 'x', status: 'completed' },
    { name: 'old', status: 'completed' }
  ]);
  const b = exec('exec_b', 2, [{ name: 'x', status: 'failed' }]);
  const c = exec('exec_c', 3, [{ name: 'x', status: 'running' }]);
  const other = { ...exec('exec_o', 4), workflowId: 'other' };

  it('columns: the workflow, oldest first, none older than the oldest page', () => {
    const cols = gridColumns([c, other, a, b], 'wf', '');
    assert.deepEqual(
      cols.map(e => e.id),
      ['exec_a', 'exec_b', 'exec_c']
    );
    assert.deepEqual(
      gridColumns([c, a, b], 'wf', at(2)).map(e => e.id),
      ['exec_b', 'exec_c']
    );
  });

  it('columns: creation order, though they started in another', () => {
    const first = { ...exec('exec_z', 5), createdAt: at(1) };
    const second = { ...exec('exec_y', 4), createdAt: at(2) };
    const live = exec('exec_x', 3); // known from events only: its start
    assert.deepEqual(
      gridColumns([live, second, first], 'wf', '').map(e => e.id),
      ['exec_z', 'exec_y', 'exec_x']
    );
    assert.deepEqual(
      gridColumns([live, second, first], 'wf', at(2)).map(e => e.id),
      ['exec_y', 'exec_x']
    );
  });

  it('rows: the definition, then tasks only older runs had', () => {
    assert.deepEqual(gridRows(['x'], [a, b, c]), ['x', 'old']);
    assert.equal(cellIndex([a])[0].get('old')?.status, 'completed');
  });

  it('picks two, the older first', () => {
    let p: string[] = [];
    p = pick(p, 'exec_c');
    p = pick(p, 'exec_a');
    assert.deepEqual(comparePair(p, [a, b, c]), ['exec_a', 'exec_c']);
    p = pick(p, 'exec_b'); // a third drops the first picked
    assert.deepEqual(p, ['exec_a', 'exec_b']);
    assert.deepEqual(pick(p, 'exec_a'), ['exec_b']);
    assert.equal(comparePair(['exec_b'], [a, b]), null);
  });
});

describe('mergeExecution', () => {
  it("an event's task patched in place equals the full merge", () => {
    const tasks: TaskRun[] = Array.from({ length: 50 }, (_, i) => ({
      name: `t${i}`,
      status: 'pending'
    }));
    const current: Execution = { ...exec('e', 0, tasks), status: 'running' };
    const event: Execution = {
      id: 'e',
      workflowId: 'wf',
      status: 'running',
      tasks: [{ name: 't7', status: 'running', attempts: 1, startTime: at(1) }]
    };
    const merged = mergeExecution(current, event);
    assert.equal(merged.tasks.length, 50);
    assert.equal(merged.tasks[7].status, 'running');
    assert.equal(merged.tasks[7].startTime, at(1));
    // Unchanged tasks stay the same objects (the views skip them).
    assert.equal(merged.tasks[6], current.tasks[6]);
    assert.deepEqual(
      merged.tasks.map(t => t.name),
      tasks.map(t => t.name)
    );
  });

  it('events one after another find their task, a new one too', () => {
    const tasks: TaskRun[] = Array.from({ length: 50 }, (_, i) => ({
      name: `t${i}`,
      status: 'pending'
    }));
    let state: Execution = { ...exec('e', 0, tasks), status: 'running' };
    const event = (task: TaskRun): Execution => ({
      id: 'e',
      workflowId: 'wf',
      status: 'running',
      tasks: [task]
    });
    for (const name of ['t3', 't40', 'extra', 't3', 'extra']) {
      state = mergeExecution(
        state,
        event({ name, status: 'running', attempts: 1, startTime: at(1) })
      );
    }
    state = mergeExecution(
      state,
      event({ name: 'extra', status: 'completed' })
    );
    assert.equal(state.tasks.length, 51);
    assert.deepEqual(
      state.tasks.filter(t => t.status !== 'pending').map(t => t.name),
      ['t3', 't40', 'extra']
    );
    assert.equal(state.tasks[50].status, 'completed');
  });

  it('a re-read saying the same keeps the task object, a change does not', () => {
    const history = (status: string) => [
      { attempt: 1, status: 'failed', error: 'boom' },
      { attempt: 2, status, duration: 0.5 }
    ];
    const task = (status: string): TaskRun => ({
      name: 't0',
      status: 'completed',
      attempts: 2,
      history: history(status)
    });
    const current: Execution = {
      ...exec('e', 0, [task('completed'), { name: 't1', status: 'pending' }]),
      status: 'completed'
    };
    // The same values in other objects, the keys in another order.
    const same = { ...current, tasks: current.tasks.map(t => ({ ...t })) };
    same.tasks[0] = {
      history: history('completed').map(h => ({ ...h })),
      attempts: 2,
      status: 'completed',
      name: 't0'
    };
    const again = mergeExecution(current, same);
    assert.equal(again.tasks[0], current.tasks[0]);
    assert.equal(again.tasks[1], current.tasks[1]);
    const changed = mergeExecution(current, {
      ...current,
      tasks: [task('failed'), { name: 't1', status: 'pending' }]
    });
    assert.notEqual(changed.tasks[0], current.tasks[0]);
    assert.equal(changed.tasks[1], current.tasks[1]);
  });
});

describe('notifications', () => {
  const failed: Execution = {
    ...exec('exec_f', 0, [
      { name: 'extract', status: 'completed' },
      { name: 'transform', status: 'failed', error: 'boom' }
    ]),
    status: 'failed',
    trigger: 'api'
  };
  const ev = { event: 'execution_failed' as const, execution_id: 'exec_f' };

  it('a failure of what this page started, with the failing task', () => {
    const n = notification(
      ev,
      failed,
      'ETL',
      new Set(['exec_f']),
      DEFAULT_NOTIFY
    );
    assert.equal(n?.kind, 'error');
    assert.equal(
      n?.message,
      'ETL failed: 1/2 completed · 1 failed — transform: boom'
    );
  });

  it("nothing for someone else's run, nor a completion unless asked", () => {
    assert.equal(
      notification(ev, failed, 'ETL', new Set(), DEFAULT_NOTIFY),
      null
    );
    const done: Execution = {
      ...failed,
      status: 'completed',
      trigger: 'schedule',
      tasks: [{ name: 'a', status: 'completed' }]
    };
    const completed = {
      event: 'execution_completed' as const,
      execution_id: 'exec_f'
    };
    assert.equal(
      notification(completed, done, 'ETL', new Set(), DEFAULT_NOTIFY),
      null
    );
    const n = notification(completed, done, 'ETL', new Set(), {
      ...DEFAULT_NOTIFY,
      notifyOnCompletion: true
    });
    assert.equal(n?.kind, 'success');
    assert.equal(n?.message, 'Scheduled run of ETL completed: 1/1 completed');
  });

  it('once per execution, without reading one that is not of interest', async () => {
    const posted: NotificationSpec[] = [];
    let loads = 0;
    const other: Execution = { ...failed, id: 'exec_o', trigger: 'api' };
    const n = new ExecutionNotifier({
      known: id => (id === 'exec_o' ? other : failed),
      load: async id => {
        loads += 1;
        return id === 'exec_o' ? other : failed;
      },
      workflowName: () => 'ETL',
      settings: async () => DEFAULT_NOTIFY,
      post: spec => posted.push(spec)
    });
    n.started('exec_f');
    const evt = { ...ev, workflow: 'wf', timestamp: at(1) };
    await n.onEvent(evt as never);
    await n.onEvent(evt as never); // a replay
    await n.onEvent({ ...evt, execution_id: 'exec_o' } as never);
    assert.equal(posted.length, 1);
    assert.equal(loads, 1);
  });
});

describe('a snapshot repeating what is known', () => {
  it('keeps the task objects, so that views skip them', () => {
    const t: TaskRun = {
      name: 'a',
      status: 'completed',
      attempts: 1,
      history: [{ attempt: 1, status: 'completed' }]
    };
    const current: Execution = {
      ...exec('e', 0, [t, { name: 'b', status: 'pending' }])
    };
    const snapshot: Execution = {
      ...exec('e', 0, [
        { ...t, history: [{ attempt: 1, status: 'completed' }] },
        { name: 'b', status: 'running', attempts: 1 }
      ])
    };
    const merged = mergeExecution(current, snapshot);
    assert.equal(merged.tasks[0], t);
    assert.equal(merged.tasks[1].status, 'running');
  });
});
