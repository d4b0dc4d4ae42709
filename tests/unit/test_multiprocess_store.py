"""The short form of ``bench/soak_multiprocess.py``: a server process and four kernel
processes write one database at once; no "database is locked", no lost event."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "soak_multiprocess.py"


def soak(*args: str) -> tuple[int, dict]:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    return proc.returncode, json.loads(lines[-1])


def test_server_and_four_kernels_share_the_database():
    code, summary = soak("--seconds", "4", "--kernels", "4")
    assert summary["problems"] == {}
    assert code == 0
    assert summary["locked"] == 0 and summary["logged_errors"] == 0
    assert summary["executions"] >= 20 and summary["events"] >= 200
    assert set(summary["statuses"]) <= {"completed", "failed", "cancelled"}


def test_the_checks_catch_deferred_transactions():
    """Negative control: plain BEGIN makes SQLite answer "database is locked"."""
    code, summary = soak("--seconds", "3", "--kernels", "4", "--control", "deferred")
    assert code == 1
    assert summary["locked"] > 0
