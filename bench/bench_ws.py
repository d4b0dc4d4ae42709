"""``/ws`` fan-out on a real `jupyter taskflow`: many clients following one large run.

    python bench/bench_ws.py [--clients 200] [--tasks 2000] [--sleep S] [--executor thread]
                             [--root PATH]

A real server (a subprocess; ``--executor``: thread, or the server's default, process)
runs one execution of a fan-out of
``--tasks`` no-op tasks (two events a task, plus the execution's) while ``--clients``
``/ws`` clients follow it live and one REST client polls ``GET /executions/{id}`` in a
loop. Printed:

* REST latency p50 / p99 / max during the run, and the same request on the idle server
  after it (the price of the request itself, for comparison);
* the lag from the execution's ``endTime`` (reported by the server) to the first, the
  median and the last client receiving the terminal event;
* events delivered (over all clients, and whether every client got every event);
* server CPU seconds (psutil on the server's pid) from the submit to the last client
  receiving the terminal event.

The clients live in a process of their own (a bare asyncio WebSocket reader, so their
parsing is cheap) and the REST poller in this one, so neither slows the other's clock.
``--root`` runs the server from another checkout of the package, e.g. a
``git worktree add /tmp/ws_before <commit>`` for a before/after comparison.

Not a test: nothing is asserted. The figures go in docs/performance.md with the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
from bench_server import TOKEN
from bench_server import Server as BaseServer

ROOT = Path(__file__).resolve().parent.parent
FINAL = (b'"execution_completed"', b'"execution_failed"', b'"execution_cancelled"')
SEQ = b'"seq":'


class Server(BaseServer):
    """``bench_server.Server`` (``jupyter taskflow`` from the package under ``root``)
    with JSON bodies and the server's CPU time."""

    def __init__(self, tmp: Path, root: Path, executor: str = "thread") -> None:
        where = subprocess.run(
            [sys.executable, "-c", "import pytaskflow_jupyter as p; print(p.__file__)"],
            env={**os.environ, "PYTHONPATH": str(root)},
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        print(f"server code: {where}", file=sys.stderr)
        super().__init__(tmp, tmp / "ws.db", root, executor=executor)
        self.ps = psutil.Process(self.proc.pid)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any, float]:
        data = None if body is None else json.dumps(body).encode()
        status, payload, took = super().request(method, path, data)
        return status, json.loads(payload) if payload else None, took

    def cpu(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)


# -- the clients (a process of their own) ---------------------------------------------------
def seam(before: bytes, after: bytes, marker: bytes) -> bytes:
    """The bytes around the boundary of two reads where only a ``marker`` split by the
    boundary fits (too short to hold one on either side: none is counted twice)."""
    return before[len(before) - len(marker) + 1 :] + after[: len(marker) - 1]


async def follow(port: int, ready: asyncio.Event, connected: list[int]) -> dict[str, Any]:
    """One /ws client: the upgrade by hand, then messages counted in the raw byte stream
    (one ``"seq":`` per event; C-speed ``bytes.count``, so the clients' own parsing does
    not decide when they receive the last event)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: token {TOKEN}\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(head.decode(errors="replace"))
    connected[0] += 1
    if connected[0] == connected[1]:
        ready.set()
    data, count, final_at = b"", 0, None
    while final_at is None:
        chunk = await reader.read(1 << 18)
        if not chunk:
            break  # closed by the server before the end (1013: a slow client)
        count += chunk.count(SEQ) + seam(data, chunk, SEQ).count(SEQ)
        if any(f in chunk or f in seam(data, chunk, f) for f in FINAL):
            final_at = time.time()
        data = chunk
    writer.close()
    return {"count": count, "final_at": final_at, "closed_early": final_at is None}


async def all_clients(port: int, n: int, out: Any) -> None:
    ready, connected = asyncio.Event(), [0, n]
    tasks = []
    for _ in range(n):
        tasks.append(asyncio.ensure_future(follow(port, ready, connected)))
        await asyncio.sleep(0.002)  # not 200 upgrades in one burst
    await asyncio.wait_for(ready.wait(), 60)
    out.put("ready")
    out.put((await asyncio.gather(*tasks), time.process_time()))


def clients_process(port: int, n: int, out: Any) -> None:
    asyncio.run(all_clients(port, n, out))


# -- the run -----------------------------------------------------------------------------------
def poll(server: Server, paths: dict[str, str], stop: threading.Event) -> dict[str, list[float]]:
    """Each path in turn, until ``stop`` (at least once); the latencies of each."""
    samples: dict[str, list[float]] = {name: [] for name in paths}
    while True:
        for name, path in paths.items():
            status, _, took = server.request("GET", path)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status}")
            samples[name].append(took)
        if stop.is_set():
            return samples


def ms_figures(samples: list[float]) -> dict[str, float]:
    """n, p50, p99 and max of ``samples`` (seconds), in milliseconds."""
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, max(0, round(0.99 * len(ms)) - 1))]
    return {"n": len(ms), "p50": statistics.median(ms), "p99": p99, "max": ms[-1]}


def ms_summary(samples: list[float]) -> str:
    f = ms_figures(samples)
    return f"n={f['n']} p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms, max {f['max']:.1f} ms"


def run(
    tmp: Path, root: Path, clients: int, tasks: int, sleep: float, executor: str
) -> dict[str, Any]:
    """One run (see the module docstring): prints its figures and returns them."""
    server = Server(tmp, root, executor)
    try:
        out: Any = mp.get_context("fork").Queue()
        proc = mp.get_context("fork").Process(
            target=clients_process, args=(server.port, clients, out)
        )
        proc.start()
        if out.get(timeout=120) != "ready":
            raise RuntimeError("clients did not connect")
        definition = {
            "id": "fan",
            "name": "fan",
            "tasks": [
                {"name": f"t{i}", "params": {"code": f"import time; time.sleep({sleep})"}}
                if sleep
                else {"name": f"t{i}"}
                for i in range(tasks)
            ],
        }
        cpu0 = server.cpu()
        status, execution, _ = server.request("POST", "/workflows", definition)
        if status != 200:
            raise RuntimeError(f"POST /workflows: {status} {execution}")
        path = f"/executions/{execution['id']}"
        paths = {"GET /workflows": "/workflows", "GET /executions/{id}": path}
        stop, during = threading.Event(), {}
        poller = threading.Thread(target=lambda: during.update(poll(server, paths, stop)))
        poller.start()
        results, clients_cpu = out.get(timeout=600)
        cpu = server.cpu() - cpu0
        stop.set()
        poller.join()
        proc.join()
        detail = server.request("GET", path)[1]
        idle = {n: [server.request("GET", p)[2] for _ in range(50)] for n, p in paths.items()}
    finally:
        server.stop()
    begin, end = (
        datetime.fromisoformat(detail[k].replace("Z", "+00:00")).timestamp()
        for k in ("startTime", "endTime")
    )
    lags = sorted(r["final_at"] - end for r in results if r["final_at"] is not None)
    counts = [r["count"] for r in results]
    expected = 2 * tasks + 2
    print(
        f"execution {execution['id']}: {detail['status']}, {len(detail['tasks'])} tasks "
        f"in {end - begin:.2f} s (startTime to endTime)"
    )
    for name in paths:
        print(
            f"REST {name}, submit to the last client's terminal event: {ms_summary(during[name])}"
        )
        print(f"REST {name}, idle server after the run: {ms_summary(idle[name])}")
    print(
        f"terminal event after endTime: first {lags[0]:.2f} s, median "
        f"{statistics.median(lags):.2f} s, last {lags[-1]:.2f} s "
        f"({len(lags)} of {clients} clients got it)"
    )
    closed = sum(r["closed_early"] for r in results)
    print(
        f"events delivered: {sum(counts)} ({clients} clients x {expected} expected; "
        f"min {min(counts)}, max {max(counts)}; closed early: {closed or 'none'})"
    )
    print(f"server CPU, submit to the last client's terminal event: {cpu:.1f} s")
    print(f"clients' CPU (their process, all of its life): {clients_cpu:.1f} s")
    return {
        "status": detail["status"],
        "run_s": end - begin,
        "during": {name: ms_figures(during[name]) for name in paths},
        "idle": {name: ms_figures(idle[name]) for name in paths},
        "lag_first_s": lags[0],
        "lag_last_s": lags[-1],
        "got_terminal": len(lags),
        "delivered": sum(counts),
        "expected": clients * expected,
        "closed_early": closed,
        "server_cpu_s": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument(
        "--sleep", type=float, default=0.0, help="seconds each task sleeps (0: no-op tasks)"
    )
    parser.add_argument(
        "--executor", default="thread", help="the server's executor (the default is process)"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout the server runs")
    parser.add_argument("--json", action="store_true", help="the figures as a last JSON line")
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {platform.machine()}; {args.clients} clients, "
        f"{args.tasks} tasks sleeping {args.sleep} s, {args.executor} executor; "
        f"server from {args.root}",
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_ws_"))
    try:
        figures = run(tmp, args.root.resolve(), args.clients, args.tasks, args.sleep, args.executor)
        if args.json:
            print(json.dumps(figures))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
