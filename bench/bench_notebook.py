"""Per-task overhead of a notebook task, against papermill running the same notebook.

    python bench/bench_notebook.py [--repeat N] [--kernel python3]

One trivial notebook (one code cell, ``result = 1``), run ``--repeat`` times (default 5)
each way, the two ways taking turns so that both see the same load:

* engine: a one-task workflow (``type: notebook``) through a ``Runner`` with a real SQLite
  ``Store`` and a ``ThreadExecutor``, as ``bench/bench_engine.py`` builds them: from
  ``runner.submit`` (validation, registration) until the execution's terminal event is
  published. It includes what a notebook task does beyond papermill: the paths checked
  under the root, parameters injected, a fresh kernel started and stopped with its
  process tree, the result read, the executed copy saved, every state change committed;
* papermill: ``papermill.execute_notebook`` of the same notebook to an output file (a
  fresh kernel too), no progress bar, no log output.

One warm-up run of each is not counted (imports, the kernelspec lookup, disk caches).
Prints the median, the fastest and the slowest in ms per notebook, and the ratio of the
medians.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytaskflow_jupyter.events import EventBus  # noqa: E402
from pytaskflow_jupyter.executors import ThreadExecutor  # noqa: E402
from pytaskflow_jupyter.runner import Runner  # noqa: E402
from pytaskflow_jupyter.store import Store  # noqa: E402

TERMINAL_EVENTS = ("execution_completed", "execution_failed", "execution_cancelled")
NOTEBOOK = "trivial.ipynb"


def write_notebook(folder: Path, kernel: str) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell("result = 1")])
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    path = folder / NOTEBOOK
    nbformat.write(nb, path)
    return path


class Engine:
    """A Runner over a Store in ``folder`` (also the notebooks' root) and 2 threads."""

    def __init__(self, folder: Path) -> None:
        self.store = Store(folder / "bench.db")
        self.executor = ThreadExecutor(2)
        self.runner = Runner(self.store, self.executor, EventBus(), root_dir=str(folder))
        self.ended = threading.Event()
        self.end = 0.0
        self.runner.bus.subscribe(self._on_events)

    def _on_events(self, events: list) -> None:
        if any(event.event in TERMINAL_EVENTS for event in events):
            self.end = time.perf_counter()
            self.ended.set()

    def once(self, index: int) -> float:
        definition = {
            "name": f"notebook bench {index}",
            "tasks": [{"name": "trivial", "type": "notebook", "params": {"path": NOTEBOOK}}],
        }
        self.ended.clear()
        start = time.perf_counter()
        execution_id = self.runner.submit(definition)["id"]
        if not self.ended.wait(300):
            raise TimeoutError("no terminal event within 300 s")
        [task] = self.runner.get(execution_id)["tasks"]
        if (task["status"], task["result"]) != ("completed", 1):
            raise AssertionError(f"the notebook task did not complete: {task}")
        return self.end - start

    def close(self) -> None:
        self.runner.close()
        self.executor.shutdown(wait=True)
        self.store.close()


def papermill_once(source: Path, folder: Path, kernel: str, index: int) -> float:
    import papermill

    output = folder / f"papermill-{index}.ipynb"
    start = time.perf_counter()
    papermill.execute_notebook(
        str(source), str(output), kernel_name=kernel, progress_bar=False, log_output=False
    )
    return time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    head = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%h"], capture_output=True, text=True
    ).stdout.strip()
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, git {head or '?'}, "
        "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--kernel", default="python3", help="kernel name (default python3)")
    args = parser.parse_args()
    import logging

    logging.getLogger("papermill").setLevel(logging.WARNING)  # one INFO line per cell
    print(machine())
    times: dict[str, list[float]] = {"engine": [], "papermill": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source = write_notebook(folder, args.kernel)
        engine = Engine(folder)
        try:
            engine.once(0)  # warm-ups, not counted
            papermill_once(source, folder, args.kernel, 0)
            for i in range(1, args.repeat + 1):
                times["engine"].append(engine.once(i))
                times["papermill"].append(papermill_once(source, folder, args.kernel, i))
        finally:
            engine.close()
        print("load average after: " + " ".join(f"{x:.1f}" for x in os.getloadavg()))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print(f"\none-cell notebook, {args.repeat} runs each (ms per notebook)\n")
    print("| way | median | fastest | slowest |")
    print("|---|---|---|---|")
    for way, values in times.items():
        print(
            f"| {way} | {medians[way] * 1000:.0f} | {min(values) * 1000:.0f} "
            f"| {max(values) * 1000:.0f} |"
        )
    extra = (medians["engine"] - medians["papermill"]) * 1000
    print(
        f"\nengine / papermill: {medians['engine'] / medians['papermill']:.2f} "
        f"({extra:+.0f} ms per notebook)"
    )


if __name__ == "__main__":
    main()
