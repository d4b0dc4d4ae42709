"""Fault injection, the long form: SIGKILL a real `jupyter taskflow` 50 times at random
moments of a 1,000-task workflow, restarting it on the same database each time.

    python bench/crash_inject.py [--kills 50] [--seed N] [--executor thread|process]
                                 [--workers 4] [--task-seconds S] [--control KIND]
                                 [--finish-timeout S] [--dir PATH] [--json]

The driver and its checks are ``tests/server/crash_harness.py`` (its docstring says what
is checked); ``tests/server/test_crash_injection.py`` runs it with 20 kills in CI. This
prints one line per kill (what was completed and running at that moment) and the figures:
kills, interrupted attempts, reruns of tasks that were running at a kill (allowed:
at-least-once), duplicate runs of completed tasks and lost completed records (both must
be 0), wall time. Exit status 1 when a check fails.

``--control rerun-completed|no-resume|phantom`` breaks one part of recovery in the
server process (negative control): the run must then fail.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.server.crash_harness import CONTROLS, run_crash_injection  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--executor", choices=("thread", "process"), default="thread")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument(
        "--task-seconds",
        type=float,
        default=None,
        help="mean sleep of a task (default: ~1 s of work per kill)",
    )
    parser.add_argument("--control", choices=CONTROLS, default=None)
    parser.add_argument(
        "--finish-timeout",
        type=float,
        default=180.0,
        help="seconds the last life may take to finish the executions",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="work directory (kept; default: a temporary one, removed)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crash-inject-") as tmp:
        workdir = args.dir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        report = run_crash_injection(
            workdir,
            kills=args.kills,
            seed=args.seed,
            executor=args.executor,
            workers=args.workers,
            task_seconds=args.task_seconds,
            control=args.control,
            finish_timeout=args.finish_timeout,
            say=print,
        )
    print(f"machine: {platform.node()}, {platform.python_version()}, {os.cpu_count()} CPUs")
    if args.json:
        print(json.dumps(report.figures()))
    print("OK" if report.ok else f"FAILED ({len(report.problems)} problems)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
