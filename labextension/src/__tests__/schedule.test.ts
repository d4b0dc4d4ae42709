import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  clockText,
  dayClockText,
  MissedSlots,
  missedSlotsKey,
  missedSlotsText,
  nextRunText,
  scheduleState,
  snapshotText,
  triggerBadgeInfo,
  untilText
} from '../model';

// Local times, so the expectations hold in any TZ the tests run in.
const NOW = new Date(2024, 0, 8, 14, 2, 0);
const local = (h: number, m: number, s = 0, day = 8) =>
  new Date(2024, 0, day, h, m, s);

describe('clockText and dayClockText', () => {
  it('writes 24 h local times, seconds only when asked or present', () => {
    assert.equal(clockText(local(9, 5)), '09:05');
    assert.equal(clockText(local(9, 5, 7)), '09:05:07');
    assert.equal(clockText(local(9, 5), true), '09:05:00');
  });

  it('says tomorrow, else the date, for another day', () => {
    assert.equal(dayClockText(local(14, 5), NOW), '14:05:00');
    assert.equal(dayClockText(local(2, 30, 0, 9), NOW), 'tomorrow 02:30:00');
    assert.equal(
      dayClockText(local(2, 30, 0, 12), NOW, false),
      '2024-01-12 02:30'
    );
  });
});

describe('untilText', () => {
  it('counts down in the largest sensible unit', () => {
    assert.equal(untilText(0), 'due now');
    assert.equal(untilText(-3), 'due now');
    assert.equal(untilText(12.4), 'in 12 s');
    assert.equal(untilText(180), 'in 3 min');
    assert.equal(untilText(3600), 'in 1 h');
    assert.equal(untilText(2 * 3600 + 5 * 60), 'in 2 h 5 min');
    assert.equal(untilText(3 * 86400 + 4 * 3600), 'in 3 d 4 h');
  });
});

describe('nextRunText', () => {
  it('is the local time and the time left', () => {
    assert.equal(
      nextRunText(local(14, 5).toISOString(), NOW),
      'next run 14:05:00 · in 3 min'
    );
  });

  it('is empty without a (valid) next run', () => {
    assert.equal(nextRunText(null, NOW), '');
    assert.equal(nextRunText('not a time', NOW), '');
  });
});

describe('scheduleState', () => {
  const base = {
    scheduleText: 'Every 10 minutes',
    paused: false,
    nextRunTime: local(14, 5).toISOString()
  };

  it('is null for a workflow without schedule', () => {
    assert.equal(scheduleState({ ...base, schedule: null }, NOW), null);
  });

  it('gives the words and the next run', () => {
    assert.deepEqual(
      scheduleState({ ...base, schedule: { every: 600 } }, NOW),
      {
        words: 'Every 10 minutes',
        paused: false,
        next: 'next run 14:05:00 · in 3 min'
      }
    );
  });

  it('has no next run while paused', () => {
    const state = scheduleState(
      { ...base, schedule: { every: 600 }, paused: true, nextRunTime: null },
      NOW
    );
    assert.equal(state?.paused, true);
    assert.equal(state?.next, '');
  });

  it('falls back on the schedule itself without the server words', () => {
    const cron = { cron: '30 2 * * 1-5', timezone: 'Europe/Paris' };
    assert.equal(
      scheduleState({ ...base, scheduleText: null, schedule: cron }, NOW)
        ?.words,
      'cron 30 2 * * 1-5 (Europe/Paris)'
    );
    assert.equal(
      scheduleState(
        { ...base, scheduleText: null, schedule: { every: 2 } },
        NOW
      )?.words,
      'every 2 seconds'
    );
  });
});

describe('missedSlotsText', () => {
  const missed = (patch: Partial<MissedSlots>): MissedSlots => ({
    count: 3,
    first: local(2, 30).toISOString(),
    last: local(4, 30).toISOString(),
    catchup: 'latest',
    fired: 1,
    detectedAt: local(9, 0).toISOString(),
    ...patch
  });

  it('says how many, when, and what the catch-up ran', () => {
    assert.equal(
      missedSlotsText(missed({}), NOW),
      "3 runs were missed while no server ran (02:30 – 04:30); catch-up 'latest' ran 1 of them."
    );
    assert.equal(
      missedSlotsText(missed({ catchup: 'all', fired: 3 }), NOW),
      "3 runs were missed while no server ran (02:30 – 04:30); catch-up 'all' ran all of them."
    );
  });

  it('says dropped when none ran, and speaks of one run in the singular', () => {
    assert.equal(
      missedSlotsText(missed({ catchup: 'none', fired: 0 }), NOW),
      "3 runs were missed while no server ran (02:30 – 04:30); catch-up 'none' dropped them."
    );
    const one = missed({ count: 1, last: local(2, 30).toISOString() });
    assert.equal(
      missedSlotsText(one, NOW),
      "1 run was missed while no server ran (02:30); catch-up 'latest' ran it."
    );
  });

  it('shows seconds when minutes would make the range look like one time', () => {
    const close = missed({
      count: 5,
      first: local(13, 43, 1).toISOString(),
      last: local(13, 43, 5).toISOString()
    });
    assert.equal(
      missedSlotsText(close, NOW),
      "5 runs were missed while no server ran (13:43:01 – 13:43:05); catch-up 'latest' ran 1 of them."
    );
  });

  it('is remembered by workflow and detection time', () => {
    const m = missed({});
    assert.equal(
      missedSlotsKey({ id: 'wf', missedSlots: m }),
      `wf@${m.detectedAt}`
    );
    assert.equal(missedSlotsKey({ id: 'wf', missedSlots: null }), null);
  });
});

describe('snapshotText', () => {
  it('shows the first 12 hex digits of a snapshot', () => {
    const hex = 'abcd1234ef56'.padEnd(64, '0');
    assert.equal(
      snapshotText({ callable: 'f', snapshot: `sha256:${hex}` }),
      'runs snapshot sha256:abcd1234ef56…'
    );
  });

  it('is null for a task without snapshot', () => {
    assert.equal(snapshotText({ callable: 'pkg.mod:f' }), null);
    assert.equal(snapshotText(undefined), null);
  });
});

describe('triggerBadgeInfo', () => {
  it('marks scheduled executions with their slot', () => {
    const slot = '2024-01-08T01:30:00Z';
    assert.deepEqual(
      triggerBadgeInfo({ trigger: 'schedule', scheduledFor: slot }, () => 'L'),
      {
        text: 'scheduled',
        trigger: 'schedule',
        title: `Scheduled run for the slot L (${slot})`
      }
    );
  });

  it('marks retries, and nothing else', () => {
    assert.equal(
      triggerBadgeInfo({ trigger: 'retry', parentId: 'exec_1' })?.title,
      'Retry of exec_1'
    );
    assert.equal(triggerBadgeInfo({ trigger: 'api' }), null);
    assert.equal(triggerBadgeInfo({ trigger: 'notebook' }), null);
    assert.equal(triggerBadgeInfo({}), null);
  });
});
