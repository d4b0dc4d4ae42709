"""The figures of issue 15's items 2, 3 and 4 from one run, as one table.

    python bench/bench_reliability.py [--root PATH]

Runs, one after the other, each in a process of its own (their own docstrings say what
they measure):

* item 2, results in memory: ``bench_results.py`` (10 tasks returning 200 MB each, thread
  and process executor, independent and chained; peak RSS and RSS after the end);
* item 3, ``/ws`` fan-out: ``bench_ws.py``, 200 clients following a 2,000-task run, with
  tasks sleeping 10 ms on the thread and on the process executor, and no-op tasks on the
  thread executor (the 4,002 events at once); REST latency during the run, the last
  client's terminal event after ``endTime``, events delivered, server CPU;
* item 4, the JSON depth check: ``bench_json_depth.py``, 8 parallel ``POST /workflows``
  of 33 MB of ``[``; each refusal's time, REST latency meanwhile, server CPU.

Printed: the machine, the commit, the load average before and after each part (other
work on the machine shows there), then one Markdown table for docs/performance.md.
About two minutes on a 2-CPU VM. Every part imports the package from ``--root`` (by
default this checkout, before any editable install), e.g. a ``git worktree`` of a commit.

Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

WS_CASES = {
    "thread, 10 ms tasks": ["--sleep", "0.01"],
    "process, 10 ms tasks": ["--sleep", "0.01", "--executor", "process"],
    "thread, no-op tasks": [],
}


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def part(script: str, args: list[str], root: Path) -> tuple[Any, str]:
    """Run ``bench/<script> --json ARGS``; its figures (the last line) and the load."""
    before = load()
    env = {**os.environ, "PYTHONPATH": str(root)}  # before the editable install
    if script != "bench_results.py":  # it imports the package itself; the others start servers
        args = [*args, "--root", str(root)]
    print(f"[{time.strftime('%H:%M:%S')}] {script} {' '.join(args)}", file=sys.stderr)
    out = subprocess.run(
        [sys.executable, str(HERE / script), "--json", *args],
        env=env,
        cwd=HERE,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"{script} failed:\n{out.stdout}\n{out.stderr}")
    sys.stderr.write(out.stdout)
    return json.loads(out.stdout.strip().splitlines()[-1]), f"{before} -> {load()}"


def ms(f: dict[str, float]) -> str:
    return f"{f['p50']:.0f} / {f['p99']:.0f} / {f['max']:.0f} ms (n={f['n']})"


Row = tuple[str, str, str, str, str]  # item, case, figure, value, target


def rows_results(cases: list[dict[str, Any]]) -> list[Row]:
    shapes = {"independent": "10 independent", "chain": "chain of 10"}
    rows = []
    for c in cases:
        what = f"{c['executor']}, {shapes.get(c['shape'], c['shape'])}"
        value = (
            f"peak {c['peak_mb']:,} MB, after {c['after_mb']:,} MB "
            f"(start {c['start_mb']} MB), {c['seconds']} s, {c['status']}"
        )
        rows.append(("2 results", what, "server RSS: peak, after the end", value, ""))
    return rows


def rows_ws(name: str, f: dict[str, Any]) -> list[Row]:
    during = f["during"]
    delivered = (
        f"{f['delivered']:,} of {f['expected']:,}, closed early: {f['closed_early'] or 'none'}"
    )
    return [
        ("3 /ws", name, "`GET /workflows` during the run, p50 / p99 / max",
         ms(during["GET /workflows"]), "p99 < 100 ms"),
        ("3 /ws", name, "`GET /executions/{id}` during the run, p50 / p99 / max",
         ms(during["GET /executions/{id}"]), "p99 < 100 ms"),
        ("3 /ws", name, "terminal event after `endTime`: first, last of 200 clients",
         f"{f['lag_first_s']:.2f} s, {f['lag_last_s']:.2f} s ({f['got_terminal']} got it)",
         "last < 1 s"),
        ("3 /ws", name, "events delivered", delivered, "all, once each"),
        ("3 /ws", name, "server CPU, submit to the last terminal event",
         f"{f['server_cpu_s']:.1f} s (run {f['run_s']:.1f} s, {f['status']})", ""),
    ]  # fmt: skip


def rows_depth(f: dict[str, Any]) -> list[Row]:
    what = "8 parallel POST of 33 MB of `[`"
    return [
        ("4 depth", what, "answers", ", ".join(f["answers"]), "400 json_too_deep"),
        ("4 depth", what, "each refusal, first byte sent to answer: median, max",
         f"{f['refusal_median_s']:.2f} s, {f['refusal_max_s']:.2f} s "
         f"(all 8 in {f['wall_s']:.2f} s)", "no 6-8 s stall"),
        ("4 depth", what, "`GET /workflows` meanwhile, p50 / p99 / max", ms(f["during"]), ""),
        ("4 depth", what, "`GET /workflows` idle, before, p50 / p99 / max", ms(f["idle"]), ""),
        ("4 depth", what, "server CPU over the 8 posts", f"{f['server_cpu_s']:.2f} s",
         "not 1.5 s a body"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout under test")
    args = parser.parse_args()
    root = args.root.resolve()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    began = time.monotonic()
    rows: list[Row] = []
    loads: list[str] = []
    cases, where = part("bench_results.py", [], root)
    rows += rows_results(cases)
    loads.append(f"results {where}")
    for name, extra in WS_CASES.items():
        figures, where = part("bench_ws.py", extra, root)
        rows += rows_ws(name, figures)
        loads.append(f"/ws {name} {where}")
    figures, where = part("bench_json_depth.py", [], root)
    rows += rows_depth(figures)
    loads.append(f"depth {where}")
    print(
        f"\nMachine: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}; commit {commit or '?'}"
        f" ({root}); {time.monotonic() - began:.0f} s in all"
    )
    print("Load average (1/5/15 min) before -> after each part: " + "; ".join(loads))
    print("\n| item | case | figure | value | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
