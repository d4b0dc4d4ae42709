import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  EventName,
  Execution,
  executionFromEvent,
  mergeTask,
  TaskflowEvent,
  TaskflowModel,
  Workflow
} from '../model';

/** The status each event carries (of its task, or of the execution). */
const STATUS: Record<EventName, string> = {
  execution_started: 'running',
  execution_completed: 'completed',
  execution_failed: 'failed',
  execution_cancelled: 'cancelled',
  task_started: 'running',
  task_completed: 'completed',
  task_failed: 'failed',
  task_retrying: 'pending',
  task_skipped: 'skipped',
  task_progress: 'running'
};

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
    status: STATUS[event],
    timestamp: `2024-01-01T00:00:${String(seq).padStart(2, '0')}.000Z`,
    ...extra
  };
}

function workflow(id: string, name: string): Workflow {
  return {
    id,
    name,
    tasks: [],
    revision: 1,
    createdAt: '2024-01-01T00:00:00Z',
    updatedAt: '2024-01-01T00:00:00Z',
    schedule: null,
    paused: false,
    nextRunTime: null,
    lastScheduledRun: null
  };
}

function snapshot(partial: Partial<Execution>): Execution {
  return {
    id: 'exec_1',
    workflowId: 'wf',
    revision: 1,
    status: 'running',
    tasks: [],
    startTime: '2024-01-01T00:00:00.000Z',
    endTime: null,
    ...partial
  };
}

describe('TaskflowModel.applyEvent', () => {
  it('builds an execution from events alone', () => {
    const m = new TaskflowModel();
    m.applyEvent(ev('execution_started'));
    m.applyEvent(ev('task_started', { task: 'A', attempt: 1 }));
    m.applyEvent(
      ev('task_completed', { task: 'A', attempt: 1, duration: 0.5 })
    );
    m.applyEvent(ev('task_skipped', { task: 'B', reason: 'not_selected' }));
    m.applyEvent(ev('task_failed', { task: 'C', attempt: 1, error: 'boom' }));
    m.applyEvent(ev('execution_failed'));
    const e = m.execution('exec_1');
    assert.ok(e);
    assert.equal(e.status, 'failed');
    assert.equal(e.workflowId, 'wf');
    assert.ok(e.endTime);
    const byName = Object.fromEntries(e.tasks.map(t => [t.name, t]));
    assert.equal(byName.A.status, 'completed');
    assert.equal(byName.A.duration, 0.5);
    assert.equal(byName.B.status, 'skipped');
    assert.equal(byName.B.reason, 'not_selected');
    assert.equal(byName.C.status, 'failed');
    assert.equal(byName.C.error, 'boom');
  });

  it('tracks lastSeq and ignores replayed events', () => {
    const m = new TaskflowModel();
    const start = ev('execution_started');
    const done = ev('execution_completed');
    assert.equal(m.applyEvent(start), true);
    assert.equal(m.applyEvent(done), true);
    assert.equal(m.lastSeq, done.seq);
    // A reconnect with since=... overlapping what we saw: no change.
    assert.equal(m.applyEvent(start), false);
    assert.equal(m.execution('exec_1')?.status, 'completed');
  });

  it('notifies subscribers and stops after unsubscribe', () => {
    const m = new TaskflowModel();
    let calls = 0;
    const off = m.subscribe(() => (calls += 1));
    m.applyEvent(ev('execution_started'));
    off();
    m.applyEvent(ev('execution_completed'));
    assert.equal(calls, 1);
  });

  it('follows retries through attempts', () => {
    const m = new TaskflowModel();
    m.applyEvent(ev('task_started', { task: 'A', attempt: 1 }));
    m.applyEvent(ev('task_retrying', { task: 'A', attempt: 1, error: 'x' }));
    let a = m.execution('exec_1')?.tasks[0];
    assert.equal(a?.status, 'retrying');
    m.applyEvent(ev('task_started', { task: 'A', attempt: 2 }));
    a = m.execution('exec_1')?.tasks[0];
    assert.equal(a?.status, 'running');
    assert.equal(a?.attempts, 2);
    assert.equal(a?.error, null);
    m.applyEvent(ev('task_completed', { task: 'A', attempt: 2 }));
    assert.equal(m.execution('exec_1')?.tasks[0].status, 'completed');
  });

  it('keeps executions of different ids apart', () => {
    const m = new TaskflowModel();
    m.applyEvent(ev('execution_started', {}, 'exec_a'));
    m.applyEvent(ev('execution_failed', {}, 'exec_b'));
    assert.equal(m.execution('exec_a')?.status, 'running');
    assert.equal(m.execution('exec_b')?.status, 'failed');
  });

  it('ignores messages without an execution', () => {
    const m = new TaskflowModel();
    const bad = { event: 'hello', seq: 1 } as unknown as TaskflowEvent;
    assert.equal(m.applyEvent(bad), false);
    assert.equal(m.recentExecutions().length, 0);
  });
});

describe('snapshots and events in any order', () => {
  it('an older snapshot does not undo a newer event', () => {
    const m = new TaskflowModel();
    m.applyEvent(ev('task_started', { task: 'A', attempt: 1 }));
    m.applyEvent(ev('task_failed', { task: 'A', attempt: 1, error: 'boom' }));
    m.applyEvent(ev('execution_failed'));
    // A GET /executions answer computed before those events arrives late.
    m.upsertExecutions([
      snapshot({
        status: 'running',
        tasks: [
          { name: 'A', status: 'running', attempts: 1 },
          { name: 'B', status: 'pending', attempts: 0 }
        ]
      })
    ]);
    const e = m.execution('exec_1');
    assert.equal(e?.status, 'failed');
    assert.deepEqual(
      e?.tasks.map(t => [t.name, t.status]),
      [
        ['A', 'failed'],
        ['B', 'pending']
      ]
    );
    assert.equal(e?.tasks[0].error, 'boom');
    assert.equal(e?.revision, 1);
  });

  it('a newer snapshot adds detail to event-built state', () => {
    const m = new TaskflowModel();
    m.applyEvent(ev('task_failed', { task: 'A', attempt: 1, error: 'boom' }));
    m.upsertExecutions([
      snapshot({
        status: 'failed',
        tasks: [
          {
            name: 'A',
            status: 'failed',
            attempts: 1,
            error: 'ValueError: boom',
            traceback: 'Traceback ...'
          }
        ]
      })
    ]);
    const a = m.execution('exec_1')?.tasks[0];
    assert.equal(a?.traceback, 'Traceback ...');
    assert.equal(a?.error, 'ValueError: boom');
    assert.equal(m.execution('exec_1')?.status, 'failed');
  });

  it('gives the same state whatever the order', () => {
    const events = [
      ev('execution_started'),
      ev('task_started', { task: 'A', attempt: 1 }),
      ev('task_retrying', { task: 'A', attempt: 1 }),
      ev('task_started', { task: 'A', attempt: 2 }),
      ev('task_completed', { task: 'A', attempt: 2 }),
      ev('execution_completed')
    ];
    const execs = events.map(e => executionFromEvent(e) as Execution);
    const forward = new TaskflowModel();
    forward.upsertExecutions(execs);
    const backward = new TaskflowModel();
    backward.upsertExecutions([...execs].reverse());
    const strip = (m: TaskflowModel) => {
      const e = m.execution('exec_1') as Execution;
      return [e.status, e.tasks.map(t => [t.status, t.attempts])];
    };
    assert.deepEqual(strip(forward), ['completed', [['completed', 2]]]);
    assert.deepEqual(strip(backward), strip(forward));
  });

  it('mergeTask keeps the newer attempt', () => {
    const newer = mergeTask(
      { name: 'A', status: 'running', attempts: 2 },
      { name: 'A', status: 'failed', attempts: 1, error: 'old' }
    );
    assert.equal(newer.status, 'running');
    assert.equal(newer.attempts, 2);
  });
});

describe('task_progress', () => {
  const progress = (done: number, total = 7, attempt = 1) =>
    ev('task_progress', { task: 'nb', attempt, progress: { done, total } });

  it('keeps the cells done of the running attempt', () => {
    const m = new TaskflowModel();
    m.applyEvent(ev('task_started', { task: 'nb', attempt: 1 }));
    m.applyEvent(progress(3));
    let t = m.execution('exec_1')?.tasks[0];
    assert.equal(t?.status, 'running');
    assert.deepEqual(t?.progress, { done: 3, total: 7 });
    assert.ok(t?.startTime, 'the start is kept');
    m.applyEvent(progress(7));
    m.applyEvent(ev('task_completed', { task: 'nb', attempt: 1 }));
    t = m.execution('exec_1')?.tasks[0];
    assert.equal(t?.status, 'completed');
    assert.deepEqual(t?.progress, { done: 7, total: 7 });
  });

  it('gives the same count whatever the order within an attempt', () => {
    const a = mergeTask(
      {
        name: 'nb',
        status: 'running',
        attempts: 1,
        progress: { done: 5, total: 7 }
      },
      {
        name: 'nb',
        status: 'running',
        attempts: 1,
        progress: { done: 2, total: 7 }
      }
    );
    const b = mergeTask(
      {
        name: 'nb',
        status: 'running',
        attempts: 1,
        progress: { done: 2, total: 7 }
      },
      {
        name: 'nb',
        status: 'running',
        attempts: 1,
        progress: { done: 5, total: 7 }
      }
    );
    assert.deepEqual(a.progress, { done: 5, total: 7 });
    assert.deepEqual(b.progress, { done: 5, total: 7 });
  });

  it('starts over with a new attempt, and a late count of the old one is ignored', () => {
    const m = new TaskflowModel();
    m.applyEvent(ev('task_started', { task: 'nb', attempt: 1 }));
    m.applyEvent(progress(6));
    m.applyEvent(ev('task_retrying', { task: 'nb', attempt: 1, error: 'x' }));
    m.applyEvent(ev('task_started', { task: 'nb', attempt: 2 }));
    assert.equal(m.execution('exec_1')?.tasks[0].progress, null);
    m.applyEvent(progress(1, 7, 2));
    const late = mergeTask(m.execution('exec_1')!.tasks[0], {
      name: 'nb',
      status: 'running',
      attempts: 1,
      progress: { done: 6, total: 7 }
    });
    assert.deepEqual(late.progress, { done: 1, total: 7 });
    assert.equal(late.attempts, 2);
  });

  it('a snapshot (no progress) keeps the count the events gave', () => {
    const m = new TaskflowModel();
    m.applyEvent(ev('task_started', { task: 'nb', attempt: 1 }));
    m.applyEvent(progress(4));
    m.upsertExecutions([
      snapshot({
        tasks: [
          {
            name: 'nb',
            status: 'running',
            attempts: 1,
            duration: null,
            startTime: '2024-01-01T00:00:00.000Z',
            endTime: null,
            error: null,
            reason: null
          }
        ]
      })
    ]);
    assert.deepEqual(m.execution('exec_1')?.tasks[0].progress, {
      done: 4,
      total: 7
    });
  });
});

describe('lists', () => {
  it('recentExecutions is newest first and limited', () => {
    const m = new TaskflowModel();
    m.upsertExecutions([
      snapshot({ id: 'exec_old', startTime: '2024-01-01T00:00:00Z' }),
      snapshot({ id: 'exec_new', startTime: '2024-01-02T00:00:00Z' }),
      snapshot({ id: 'exec_mid', startTime: '2024-01-01T12:00:00Z' })
    ]);
    assert.deepEqual(
      m.recentExecutions().map(e => e.id),
      ['exec_new', 'exec_mid', 'exec_old']
    );
    assert.deepEqual(
      m.recentExecutions(1).map(e => e.id),
      ['exec_new']
    );
  });

  it('places a pending execution (no startTime) by its createdAt', () => {
    const m = new TaskflowModel();
    m.upsertExecutions([
      snapshot({ id: 'exec_run', startTime: '2024-01-01T00:00:00Z' }),
      snapshot({
        id: 'exec_pending',
        status: 'pending',
        startTime: null,
        createdAt: '2024-01-01T00:00:05Z'
      })
    ]);
    assert.deepEqual(
      m.recentExecutions().map(e => e.id),
      ['exec_pending', 'exec_run']
    );
  });

  it('setWorkflows replaces the list', () => {
    const m = new TaskflowModel();
    m.setWorkflows([workflow('a', 'A')]);
    m.setWorkflows([workflow('b', 'B')]);
    assert.deepEqual(
      m.workflows.map(w => w.id),
      ['b']
    );
    assert.equal(m.workflow('a'), undefined);
  });
});
