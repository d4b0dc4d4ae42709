"""Fault injection (issue 4): ``jupyter taskflow`` is SIGKILLed 20 times at random moments
of a 1,000-task workflow and restarted on the same database each time. Every execution
ends completed, no completed-task record is lost, no completed task runs again.

The driver is ``crash_harness.py`` (``bench/crash_inject.py`` runs it with 50 kills).
``TASKFLOW_CRASH_SEED=<seed>`` replays a failed run: the seed is in the failure message.
"""

from __future__ import annotations

import os

import pytest

from .crash_harness import run_crash_injection

KILLS = 20


def _seed() -> int | None:
    value = os.environ.get("TASKFLOW_CRASH_SEED")
    return int(value) if value else None


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_at_random_moments_of_a_1000_task_workflow(tmp_path):
    report = run_crash_injection(tmp_path, kills=KILLS, seed=_seed())
    figures = report.figures()
    replay = f"TASKFLOW_CRASH_SEED={report.seed} replays this run\n{report.table()}"
    assert report.ok, replay
    assert figures["kills_mid_run"] >= KILLS, replay
    assert figures["final_status"] == [("completed", figures["executions"])], replay
    assert figures["tasks_completed"] == figures["tasks_expected"] == 1000 * figures["executions"]
    assert figures["lost_records"] == 0 and figures["duplicate_runs"] == 0, replay
    # the kills hit work in progress, spread over the run (not all at the start or the end)
    assert figures["interrupted_attempts"] > 0, replay
    assert len(set(figures["completed_before_each_kill"])) >= KILLS // 4, replay


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_checks_fail_when_recovery_reruns_completed_tasks(tmp_path):
    """Negative control: a server whose resume forgets completed tasks must be caught."""
    report = run_crash_injection(
        tmp_path, kills=2, seed=_seed(), control="rerun-completed", early_fraction=0
    )
    figures = report.figures()
    assert not report.ok, report.table()
    assert figures["duplicate_runs"] > 0 and figures["lost_records"] > 0, report.table()
