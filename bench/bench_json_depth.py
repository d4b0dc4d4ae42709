"""The JSON depth check on a real `jupyter taskflow`: bodies of ``[`` refused in parallel.

    python bench/bench_json_depth.py [--parallel 8] [--mb 33] [--root PATH]

A real server (``bench_ws.Server``: a subprocess, thread executor, the default limits:
32 MiB of body, depth 64) gets ``--parallel`` concurrent ``POST /workflows``, each from
a connection of its own, each a body of ``--mb`` million ``[`` (under the size cap, so it
is read whole and goes to the parser), while one more client polls ``GET /workflows`` in
a loop. Printed:

* each refusal: its status and ``code`` (400 ``json_too_deep`` expected) and the time
  from its first byte sent to its answer (the upload of the body included);
* ``GET /workflows`` latency during the posts (from the first post to the last answer),
  and on the idle server before them, for comparison;
* the server's CPU seconds over the posts (psutil on its pid), and the wall time.

Before the depth check read windows (``server/body.py``), one such body cost 1.5 s of
CPU and eight in parallel stalled the server 6-8 s.

Not a test: nothing is asserted. The figures go in docs/performance.md with the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_server import TOKEN
from bench_ws import ROOT, Server, ms_figures, ms_summary


def post(port: int, body: bytes, start: threading.Barrier) -> dict[str, Any]:
    """One ``POST /workflows`` of ``body`` on a connection of its own."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.connect()
    headers = {"Authorization": f"token {TOKEN}", "Content-Type": "application/json"}
    start.wait()
    began = time.perf_counter()
    conn.request("POST", "/workflows", body=body, headers=headers)
    resp = conn.getresponse()
    payload = resp.read()
    took = time.perf_counter() - began
    conn.close()
    try:
        code = json.loads(payload).get("code")
    except ValueError:
        code = None
    return {"status": resp.status, "code": code, "seconds": took, "ended": time.perf_counter()}


def measure(server: Server, parallel: int, mb: int) -> dict[str, Any]:
    """The figures of one run on ``server`` (see the module docstring)."""
    idle = [server.request("GET", "/workflows")[2] for _ in range(50)]
    body = b"[" * (mb * 1_000_000)
    start = threading.Barrier(parallel + 1)
    results: list[dict[str, Any]] = [{} for _ in range(parallel)]

    def one(i: int) -> None:
        results[i] = post(server.port, body, start)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(parallel)]
    for t in threads:
        t.start()
    cpu0 = server.cpu()
    start.wait()
    began = time.perf_counter()
    during: list[float] = []
    while any(t.is_alive() for t in threads):
        during.append(server.request("GET", "/workflows")[2])
    for t in threads:
        t.join()
    wall = max(r["ended"] for r in results) - began
    cpu = server.cpu() - cpu0
    return {"idle": idle, "during": during, "posts": results, "wall": wall, "cpu": cpu}


def report(figures: dict[str, Any], parallel: int, mb: int) -> None:
    posts = figures["posts"]
    answers = sorted({(r["status"], r["code"]) for r in posts})
    seconds = sorted(r["seconds"] for r in posts)
    print(
        f"{parallel} parallel POST /workflows of {mb} MB of '[': answers "
        + ", ".join(f"{s} {c}" for s, c in answers)
        + f"; each from its first byte to its answer: min {seconds[0]:.2f} s, median "
        f"{statistics.median(seconds):.2f} s, max {seconds[-1]:.2f} s"
    )
    print(f"all {parallel} answered {figures['wall']:.2f} s after the first was sent")
    print(f"REST GET /workflows during the posts: {ms_summary(figures['during'])}")
    print(f"REST GET /workflows, idle server before: {ms_summary(figures['idle'])}")
    print(f"server CPU over the posts: {figures['cpu']:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--mb", type=int, default=33, help="millions of '[' in each body")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout the server runs")
    parser.add_argument("--json", action="store_true", help="the figures as a last JSON line")
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}; server from {args.root}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_depth_"))
    try:
        server = Server(tmp, args.root.resolve())
        try:
            figures = measure(server, args.parallel, args.mb)
        finally:
            server.stop()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(figures, args.parallel, args.mb)
    if args.json:
        seconds = [r["seconds"] for r in figures["posts"]]
        print(
            json.dumps(
                {
                    "answers": sorted({f"{r['status']} {r['code']}" for r in figures["posts"]}),
                    "refusal_median_s": statistics.median(seconds),
                    "refusal_max_s": max(seconds),
                    "wall_s": figures["wall"],
                    "during": ms_figures(figures["during"]),
                    "idle": ms_figures(figures["idle"]),
                    "server_cpu_s": figures["cpu"],
                }
            )
        )


if __name__ == "__main__":
    main()
