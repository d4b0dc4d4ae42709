import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  countsText,
  Execution,
  formatDuration,
  plural,
  taskCounts,
  TaskStatus
} from '../model';

function exec(...statuses: TaskStatus[]): Execution {
  return {
    id: 'exec_1',
    workflowId: 'wf',
    status: 'running',
    tasks: statuses.map((status, i) => ({ name: `t${i}`, status }))
  };
}

describe('taskCounts', () => {
  it('counts by status; done is completed + skipped', () => {
    const c = taskCounts(
      exec(
        'completed',
        'completed',
        'completed',
        'completed',
        'skipped',
        'skipped',
        'failed',
        'pending'
      )
    );
    assert.deepEqual(c, {
      completed: 4,
      skipped: 2,
      failed: 1,
      cancelled: 0,
      running: 0,
      pending: 1,
      done: 6,
      total: 8
    });
    // a skip is not a success: the line says what completed, then the rest
    assert.equal(countsText(c), '4/8 completed · 2 skipped · 1 failed');
  });

  it('a retrying task is running, not done', () => {
    const c = taskCounts(exec('retrying', 'running', 'cancelled'));
    assert.equal(c.running, 2);
    assert.equal(c.done, 0);
    assert.equal(countsText(c), '0/3 completed · 1 cancelled · 2 running');
  });

  it('an execution without tasks', () => {
    assert.equal(countsText(taskCounts(exec())), 'no tasks');
  });
});

describe('plural', () => {
  it('says 1 task, not 1 tasks', () => {
    assert.equal(plural(1, 'task'), '1 task');
    assert.equal(plural(0, 'task'), '0 tasks');
    assert.equal(plural(7, 'task'), '7 tasks');
  });
});

describe('formatDuration', () => {
  it('writes every duration one way', () => {
    const cases: Array<[number | null, string]> = [
      [null, ''],
      [0, '<1 ms'],
      [0.0004, '<1 ms'],
      [0.0006, '1 ms'],
      [0.34, '340 ms'],
      [0.9996, '1.0 s'],
      [2.54, '2.5 s'],
      [12.4, '12 s'],
      [59.6, '1 min 0 s'],
      [184, '3 min 4 s'],
      [3720, '1 h 2 min']
    ];
    for (const [seconds, text] of cases) {
      assert.equal(formatDuration(seconds), text, String(seconds));
    }
  });
});
