"""Latency of the REST API on a real `jupyter taskflow` (a subprocess, over HTTP).

    python bench/bench_server.py [--posts 100] [--gets 300] [--executions 10000]

Measured, each with p50 / p99 / max over keep-alive HTTP/1.1 requests from one client:

* ``POST /workflows`` with a 1,000-task definition: a new workflow id each time (each
  request validates, stores a new definition and records a new execution), and the same
  definition re-posted (no new revision). Executions run in the background while the
  next requests come (no-op tasks, thread executor), as they would on a real server.
* ``GET /executions`` with 10,000 executions stored (seeded through ``Store`` before the
  server starts): the first page (default limit 100), a filtered page, a page deep in
  the cursor chain, and ``limit=1000``.

Not a test: nothing is asserted. The figures go in the project's notes with the machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytaskflow_jupyter.events import make_event  # noqa: E402
from pytaskflow_jupyter.model import TaskRun, utcnow  # noqa: E402
from pytaskflow_jupyter.runner import new_execution_id  # noqa: E402
from pytaskflow_jupyter.store import Store  # noqa: E402
from pytaskflow_jupyter.transitions import Changes  # noqa: E402
from pytaskflow_jupyter.validation import parse_workflow  # noqa: E402

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def definition(workflow_id: str, tasks: int = 1000) -> dict[str, Any]:
    """``tasks`` no-op python tasks in chains of 10 (1000 tasks, 900 edges)."""
    return {
        "id": workflow_id,
        "name": workflow_id,
        "tasks": [
            {
                "name": f"t{i}",
                "type": "python",
                "params": {},
                "dependencies": [f"t{i - 1}"] if i % 10 else [],
            }
            for i in range(tasks)
        ],
    }


def seed(db: Path, count: int) -> None:
    """``count`` finished executions of three workflows, written through the Store."""
    store = Store(db)
    workflows = []
    for name in ("etl", "report", "train"):
        wf = parse_workflow(
            {
                "id": name,
                "name": name,
                "tasks": [{"name": "extract"}, {"name": "load", "dependencies": ["extract"]}],
            }
        )
        workflows.append((name, store.save_workflow(wf)))
    for i in range(count):
        workflow_id, revision = workflows[i % 3]
        execution_id = new_execution_id()
        store.create_execution(execution_id, workflow_id, revision)
        now = utcnow()
        rows = [TaskRun(name, "completed", 1, now, now, 0.01) for name in ("extract", "load")]
        store.commit(
            execution_id,
            Changes(
                tasks=rows,
                events=[make_event("execution_completed", execution_id, workflow_id, "completed")],
                execution={
                    "status": "failed" if i % 10 == 0 else "completed",
                    "start_time": now,
                    "end_time": now,
                },
            ),
        )
    store.close()


class Server:
    """``jupyter taskflow`` from the package under ``root``, on a free port, with a
    token; ``executor`` (default ``thread``; the server's own default is ``process``)
    and ``workers`` (0: the executor's default) are its ``TaskFlowApp`` options.
    ``bench_ws.py`` and ``bench_perf.py`` build on it."""

    def __init__(
        self,
        tmp: Path,
        db: Path,
        root: Path = ROOT,
        *,
        executor: str = "thread",
        workers: int = 0,
    ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        env = {
            **os.environ,
            "PYTHONPATH": str(root),  # before the editable install of this checkout
            "JUPYTER_CONFIG_DIR": str(tmp / "cfg"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "rt"),
            "JUPYTER_DATA_DIR": str(tmp / "data"),
        }
        env.pop("JUPYTER_PORT", None)
        self.log = open(tmp / "server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from pytaskflow_jupyter.server.app import main; main()",
                "--allow-root",
                f"--port={self.port}",
                f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={tmp}",
                f"--TaskFlowApp.db_path={db}",
                f"--TaskFlowApp.executor={executor}",
                f"--TaskFlowApp.workers={workers}",
                "--ServerApp.log_level=WARN",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                if self.request("GET", "/workflows")[0] == 200:
                    return
            except OSError:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"server did not start; see {tmp / 'server.log'}")
            time.sleep(0.2)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes, float]:
        headers = {"Authorization": f"token {TOKEN}", **(headers or {})}
        if body is not None:
            headers["Content-Type"] = "application/json"
        start = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - start

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def summary(name: str, samples: list[float], extra: str = "") -> str:
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[min(len(ms) - 1, max(0, round(0.99 * len(ms)) - 1))]
    return (
        f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p99:.1f} | {ms[-1]:.1f} | {extra} |"
    )


def measure(
    server: Server, method: str, path: str, n: int, body=None, warmup: int = 3, expect: int = 200
) -> list[float]:
    times = []
    for i in range(warmup + n):
        payload = body(i) if callable(body) else body
        status, data, took = server.request(method, path, payload)
        if status != expect:
            raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")
        if i >= warmup:
            times.append(took)
    return times


def bench_reads(tmp: Path, count: int, n: int) -> list[str]:
    db = tmp / "reads.db"
    start = time.perf_counter()
    seed(db, count)
    print(f"seeded {count} executions in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    server = Server(tmp / "reads", db)
    rows = []
    try:
        rows.append(
            summary(
                "GET /executions (first page, limit 100)",
                measure(server, "GET", "/executions", n),
                f"{count} stored",
            )
        )
        rows.append(
            summary(
                "GET /executions?workflow_id=etl",
                measure(server, "GET", "/executions?workflow_id=etl", n),
                "a third of them match",
            )
        )
        rows.append(
            summary(
                "GET /executions?status=failed",
                measure(server, "GET", "/executions?status=failed", n),
                "a tenth of them match",
            )
        )
        path = "/executions?limit=100"
        for _ in range(50):
            server.conn.request("GET", path, headers={"Authorization": f"token {TOKEN}"})
            resp = server.conn.getresponse()
            resp.read()
            cursor = resp.getheader("X-Next-Cursor")
            if cursor is None:
                break
            path = f"/executions?limit=100&cursor={cursor}"
        rows.append(
            summary(
                "GET /executions, 51st page by cursor", measure(server, "GET", path, n), "limit 100"
            )
        )
        rows.append(
            summary(
                "GET /executions?limit=1000",
                measure(server, "GET", "/executions?limit=1000", max(20, n // 10)),
                "1000 per page",
            )
        )
    finally:
        server.stop()
    return rows


def bench_posts(tmp: Path, n: int) -> list[str]:
    server = Server(tmp / "posts", tmp / "posts.db")
    rows = []
    try:
        size = len(json.dumps(definition("x")))
        rows.append(
            summary(
                "POST /workflows, 1,000 tasks, a new workflow each time",
                measure(
                    server,
                    "POST",
                    "/workflows",
                    n,
                    lambda i: json.dumps(definition(f"w{i}")).encode(),
                ),
                f"{size / 1024:.0f} KiB body",
            )
        )
        same = json.dumps(definition("same")).encode()
        rows.append(
            summary(
                "POST /workflows, 1,000 tasks, the same definition again",
                measure(server, "POST", "/workflows", n, same),
                "no new revision",
            )
        )
        deadline = time.monotonic() + 600  # let the executions finish before reading
        while time.monotonic() < deadline:
            active = [
                server.request("GET", f"/executions?status={s}&limit=1")[1]
                for s in ("pending", "running")
            ]
            if active == [b"[]", b"[]"]:
                break
            time.sleep(0.5)
        rows.append(
            summary(
                "GET /executions, a page of 100 executions of 1,000 tasks",
                measure(server, "GET", "/executions", max(20, n // 5)),
                "every task's summary is in the list",
            )
        )
    finally:
        server.stop()
    return rows


def machine() -> str:
    cpu = platform.processor()
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=100)
    parser.add_argument("--gets", type=int, default=300)
    parser.add_argument("--executions", type=int, default=10_000)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tf-bench-"))
    try:
        rows = bench_posts(tmp, args.posts) + bench_reads(tmp, args.executions, args.gets)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nMachine: {machine()}\n")
    print("| request | n | p50 ms | p99 ms | max ms | note |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
