import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { abandonedText, watchAbandoned } from '../model';

describe('attempts given up on but still running', () => {
  it('says which attempt, or nothing', () => {
    assert.equal(
      abandonedText({ abandoned: { attempt: 2, since: null } }),
      'attempt 2 given up on but still running in its thread'
    );
    assert.equal(abandonedText({ abandoned: null }), null);
    assert.equal(abandonedText(undefined), null);
  });

  it('watches an ended execution while one shows, and a while after the end', () => {
    const end = '2026-12-01T14:00:00.000Z';
    const at = Date.parse(end);
    const plain = [{ name: 'a', status: 'failed' as const }];
    const left = [
      {
        name: 'a',
        status: 'failed' as const,
        abandoned: { attempt: 1, since: end }
      }
    ];
    const running = { status: 'running' as const, endTime: null, tasks: left };
    const ended = { status: 'failed' as const, endTime: end, tasks: plain };
    assert.equal(watchAbandoned(running, at), false);
    assert.equal(watchAbandoned(ended, at + 5000), true);
    assert.equal(watchAbandoned(ended, at + 60000), false);
    assert.equal(watchAbandoned({ ...ended, tasks: left }, at + 60000), true);
  });
});
