"""A 100,000-task fan-out through a real `jupyter taskflow`: memory and REST meanwhile.

    python bench/bench_scale.py [--tasks 100000] [--executor process] [--shape fanout]
                                [--root PATH] [--busy K]

A real server (a subprocess, its default ``process`` executor unless ``--executor``)
gets ONE ``POST /workflows`` of a fan-out: a root and ``--tasks`` - 1 tasks under it,
each calling ``bench._floor:noop`` (real attempts, not the engine's no-op fast path);
``--shape chain`` posts a chain of ``--tasks`` instead (a serial run: REST while the
process executor's slot and worker spin, docs/executors.md "Spinning").
One ``/ws`` client follows it (as an open Lab panel would) and one REST client polls,
in turn, ``GET /workflows`` (gzip, as a browser asks it, and identity) and a random
page of ``GET /executions/{id}?limit=100``,
until the client has the terminal event; then the same requests 50 times on the idle
server, and the first, a middle and the last page. Printed: the run's time, the
server's RSS (psutil, every 50 ms: start, peak, after the end) and the worker
processes' peak (their sum), and the latency of each request, p50 / p99 / max.
``--busy K`` runs K processes that only spin, from the ``POST`` to the last request: a
stand-in for the VM's slower hours (a CPU taken by something else), so that a change
can be compared under contention on demand.

Not a test: nothing is asserted (docs/performance.md, "Scale through the server").
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing as mp
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
from bench_server import Server as BaseServer
from bench_ws import ROOT, Server, clients_process, ms_summary

from bench._floor import NOOP, definition

PAGE = 100
# what the REST client asks in turn: the listing as a browser asks it (gzip) and as
# a client that takes no encoding does, and a random page of the execution
REQUESTS = (
    ("GET /workflows (gzip)", "/workflows", {"Accept-Encoding": "gzip, deflate, br"}),
    ("GET /workflows (identity)", "/workflows", {}),
    ("GET /executions/{id} page", "/executions/{id}?limit={limit}&cursor={cursor}", {}),
)
GZIP_MAGIC = b"\x1f\x8b"
INFLATE = "the client's gunzip of the listing (not in the figures above; idle server)"


def fan_out(n: int) -> dict[str, Any]:
    """A root and ``n - 1`` tasks depending on it, every one calling the no-op (no sink:
    ``_floor.definition``'s fan-in would pass ``Limits.max_dependencies``)."""
    call = {"callable": NOOP}
    return {
        "id": "scale",
        "name": "scale",
        "tasks": [
            {"name": "root", "params": call},
            *({"name": f"t{i}", "params": call, "dependencies": ["root"]} for i in range(n - 1)),
        ],
    }


def chain(n: int) -> dict[str, Any]:
    """``n`` tasks, each depending on the one before, every one calling the no-op."""
    return definition("chain", n)


SHAPES = {"fanout": fan_out, "chain": chain}


class Rss:
    """The server's RSS and its children's (the process workers) sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.ps = psutil.Process(pid)
        self.start = self.ps.memory_info().rss
        self.peak = self.start
        self.children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self.ps.memory_info().rss)
            total = 0
            for child in self.ps.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            self.children = max(self.children, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return int(self.ps.memory_info().rss)


def poll(
    server: Server, execution_id: str, n: int, stop: threading.Event, rounds: int | None = None
) -> dict[str, list[float]]:
    """``GET /workflows`` and a random page of the execution, in turn, until ``stop``
    (or ``rounds`` of the two); each timed from the request's first byte to the
    answer's last, and not parsed."""
    samples: dict[str, list[float]] = {name: [] for name, _, _ in REQUESTS}
    if rounds is not None:
        samples[INFLATE] = []
    pages = max(1, -(-n // PAGE))
    done = 0
    while not stop.is_set() and (rounds is None or done < rounds):
        done += 1
        cursor = random.randrange(pages) * PAGE
        for name, path, headers in REQUESTS:
            path = path.format(id=execution_id, limit=PAGE, cursor=cursor)
            # the body as bytes: parsing 22 MB here would leave a sample a second
            status, body, took = BaseServer.request(server, "GET", path, headers=headers)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status} {body[:200]!r}")
            samples[name].append(took)
            # idle, not taking CPU from the run; a listing under the server's gzip
            # threshold comes back as it is
            if headers and rounds is not None and body[:2] == GZIP_MAGIC:
                start = time.perf_counter()
                gzip.decompress(body)
                samples[INFLATE].append(time.perf_counter() - start)
    return {name: taken for name, taken in samples.items() if taken}  # none: no line


def spin() -> None:
    while True:
        pass


def mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--executor", default="process")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="fanout")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument(
        "--busy", type=int, default=0, help="processes that spin meanwhile (contention)"
    )
    args = parser.parse_args()
    n = args.tasks
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), args.root, args.executor)
        try:
            ctx = mp.get_context("fork")
            out: Any = ctx.Queue()
            follower = ctx.Process(target=clients_process, args=(server.port, 1, out))
            follower.start()
            if out.get(timeout=120) != "ready":
                raise RuntimeError("the /ws client did not connect")
            rss = Rss(server.proc.pid)
            busy = [ctx.Process(target=spin, daemon=True) for _ in range(args.busy)]
            for process in busy:
                process.start()
            begin = time.perf_counter()
            definition = SHAPES[args.shape](n)
            status, execution, took = server.request("POST", "/workflows", definition)
            if status != 200:
                raise RuntimeError(f"POST /workflows: {status} {execution}")
            print(f"POST /workflows of {n:,} tasks answered in {took:.2f} s", file=sys.stderr)
            stop, during = threading.Event(), {}
            poller = threading.Thread(
                target=lambda: during.update(poll(server, execution["id"], n, stop))
            )
            poller.start()
            (result,), _cpu = out.get(timeout=3600)
            wall = time.perf_counter() - begin
            stop.set()
            poller.join()
            follower.join()
            path = f"/executions/{execution['id']}"
            pages = {
                where: server.request("GET", f"{path}?limit={PAGE}&cursor={cursor}")
                for where, cursor in (("first", 0), ("middle", n // 2), ("last", n - 1))
            }
            idle = poll(server, execution["id"], n, threading.Event(), rounds=50)
            for process in busy:
                process.terminate()
                process.join()
            time.sleep(1.0)
            after = rss.stop()
        finally:
            server.stop()
    first = pages["first"][1]
    print(
        f"\n{n:,}-task {'fan-out' if args.shape == 'fanout' else args.shape} through the "
        f"server ({args.executor} executor): "
        f"{first['status']}, counts {first['counts']}, {first['taskCount']:,} tasks; "
        f"POST to the terminal event on /ws {wall:.1f} s "
        f"({wall / n * 1e6:.0f} us a task); events on /ws: {result['count']:,} "
        f"of {2 * n + 2:,}" + (f"; --busy {args.busy}" if args.busy else "")
    )
    print(
        f"server RSS: start {mib(rss.start)}, peak {mib(rss.peak)}, after the end "
        f"{mib(after)}; worker processes' peak (sum) {mib(rss.children)}"
    )
    for name, samples in during.items():
        print(f"{name} during the run: {ms_summary(samples)}")
    for name, samples in idle.items():
        print(f"{name} after the run: {ms_summary(samples)}")
    for where, (status, body, took) in pages.items():
        print(f"page {where}: {status}, {len(body['tasks'])} tasks, {took * 1000:.1f} ms")


if __name__ == "__main__":
    main()
