"""Notebook tasks (SPEC section 9) run for real: nbclient, a real ipykernel per attempt,
notebooks written with nbformat in ``tmp_path`` (the server's root in each test)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from pytaskflow_jupyter.errors import InvalidInput, NotFound, TaskCodeError
from pytaskflow_jupyter.notebook_task import (
    NotebookError,
    inspect_parameters,
    run_notebook,
    safe_file_name,
)
from pytaskflow_jupyter.tasks import Job

TRICKY = "q\"'\\\n\té😀 {x}"


def params_cell(source: str) -> nbformat.NotebookNode:
    return new_code_cell(source, metadata={"tags": ["parameters"]})


def write_notebook(path: Path, *cells: nbformat.NotebookNode) -> Path:
    nb = new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def make_job(root: Path, path: str, task: str = "report", **fields) -> Job:
    params = {"path": path, **fields.pop("params", {})}
    return Job("exec_1", "wf", task, 1, "notebook", params, root_dir=str(root), **fields)


def read_saved(root: Path, output: str) -> nbformat.NotebookNode:
    return nbformat.read(root / output, as_version=4)


def wait_for_pids(path: Path, count: int, timeout: float = 30) -> list[int]:
    end = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        if len(text.split()) >= count and text.endswith("\n"):
            return [int(p) for p in text.split()]
        if time.monotonic() >= end:
            raise AssertionError(f"{path} was not written")
        time.sleep(0.05)


def status(pid: int) -> str:
    try:
        return str(psutil.Process(pid).status())
    except psutil.NoSuchProcess:
        return "gone"


def assert_gone(pids: list[int]) -> None:
    assert pids
    for pid in pids:
        assert status(pid) in ("gone", psutil.STATUS_ZOMBIE), pid


# A cell that records the kernel's pid and a child's (in its own session, so killing the
# kernel's process group alone would miss it), then runs until stopped.
RECORD_AND_WAIT = (
    "import os, subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'],"
    " start_new_session=True)\n"
    "with open('pids.txt', 'w') as f:\n"
    "    f.write(f'{os.getpid()} {child.pid}\\n')\n"
    "time.sleep(120)\n"
)


def test_parameters_upstream_result_streams_and_progress(tmp_path, capsys):
    source = write_notebook(
        tmp_path / "reports" / "report.ipynb",
        new_markdown_cell("# Report"),
        new_code_cell("x = 1"),
        params_cell("limit: int = 10  # rows\nname = 'default'\nregion = None"),
        new_code_cell(
            "import os\n"
            "print('hello from the notebook')\n"
            "result = {'limit': limit, 'name': name, 'region': region, 'upstream': upstream,\n"
            "          'other': 'other' in globals(), 'cwd': os.getcwd(), 'x': x}"
        ),
    )
    before = source.read_bytes()
    calls = []
    job = make_job(
        tmp_path,
        "reports/report.ipynb",
        params={"parameters": {"limit": 5, "name": "from params"}},
        exec_params={"name": "from the execution", "other": 1},
        upstream={"extract": [1, 2, {"k": None}]},
    )
    result, output = run_notebook(job, progress=lambda d, t: calls.append((d, t)))

    assert result == {
        "limit": 5,
        "name": "from the execution",  # the execution's parameter wins, as it is assigned
        "region": None,
        "upstream": {"extract": [1, 2, {"k": None}]},
        "other": False,  # not assigned by the parameters cell: not injected
        "cwd": str((tmp_path / "reports").resolve()),
        "x": 1,
    }
    assert output == ".taskflow/runs/exec_1/report.ipynb"
    assert source.read_bytes() == before
    saved = read_saved(tmp_path, output)
    assert len(saved.cells) == 5  # one injected cell, nothing added to read the result
    assert saved.cells[3].metadata["tags"] == ["injected-parameters"]
    assert "limit = 5" in saved.cells[3].source
    assert saved.cells[4].outputs[0]["text"] == "hello from the notebook\n"
    assert [c.execution_count for c in saved.cells if c.cell_type == "code"] == [1, 2, 3, 4]
    assert "hello from the notebook\n" in capsys.readouterr().out
    assert calls[-1] == (4, 4)


def test_no_parameters_cell_injects_at_top_and_non_json_result_is_summarised(tmp_path):
    write_notebook(
        tmp_path / "nb.ipynb",
        new_code_cell(f"assert s == {TRICKY!r}, repr(s)\nresult = {{1, 2}}"),
    )
    job = make_job(tmp_path, "nb.ipynb", params={"parameters": {"s": TRICKY}})
    result, output = run_notebook(job)

    assert result == {"summary": "{1, 2}", "type": "set", "json": False}
    saved = read_saved(tmp_path, output)
    assert saved.cells[0].metadata["tags"] == ["injected-parameters"]
    assert len(saved.cells) == 2


def test_undefined_result_is_none_and_unsafe_task_names_get_safe_files(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", new_code_cell("y = 2"))
    job = make_job(tmp_path, "nb.ipynb", task="load/../all data", params={"kernel": "python3"})
    result, output = run_notebook(job)

    assert result is None
    name = safe_file_name("load/../all data")
    assert output == f".taskflow/runs/exec_1/{name}.ipynb"
    assert (tmp_path / output).is_file()


def test_safe_file_name_is_deterministic_and_keeps_names_apart():
    assert safe_file_name("report") == "report"
    assert safe_file_name("a b") == safe_file_name("a b")
    assert safe_file_name("a b") != safe_file_name("a_b") == "a_b"
    for name in ("../x", ".hidden", "a/b", "x" * 300, "é"):
        safe = safe_file_name(name)
        assert "/" not in safe and not safe.startswith(".") and len(safe) <= 100


def test_failing_cell_names_the_cell_and_saves_the_notebook(tmp_path):
    write_notebook(
        tmp_path / "nb.ipynb",
        new_markdown_cell("intro"),
        new_code_cell("print('before')"),
        new_code_cell("raise ValueError('bad value')"),
        new_code_cell("result = 'never'"),
    )
    with pytest.raises(NotebookError) as info:
        run_notebook(make_job(tmp_path, "nb.ipynb"))

    exc = info.value
    assert isinstance(exc, TaskCodeError)
    # cell 4 of the saved notebook: injected (1), markdown (2), print (3), raise (4)
    assert str(exc) == "cell 4: ValueError: bad value"
    assert "ValueError" in exc.traceback_text and "bad value" in exc.traceback_text
    assert "\x1b[" not in exc.traceback_text
    assert exc.output == ".taskflow/runs/exec_1/report.ipynb"
    saved = read_saved(tmp_path, exc.output)
    assert saved.cells[3].outputs[-1]["output_type"] == "error"
    assert saved.cells[3].outputs[-1]["ename"] == "ValueError"
    assert saved.cells[4].outputs == []


def test_symlink_outside_the_root_is_refused_without_opening_the_target(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    # a FIFO: opening it to read would block, so a read would hang this test
    os.mkfifo(outside / "secret.ipynb")
    (root / "link.ipynb").symlink_to(outside / "secret.ipynb")

    with pytest.raises(NotebookError, match="outside") as info:
        run_notebook(make_job(root, "link.ipynb"))
    assert info.value.output is None
    assert not (root / ".taskflow").exists()
    with pytest.raises(InvalidInput, match="outside"):
        inspect_parameters("link.ipynb", str(root))
    with pytest.raises(NotebookError, match="not found"):
        run_notebook(make_job(root, "missing.ipynb"))
    with pytest.raises(NotFound):
        inspect_parameters("missing.ipynb", str(root))


def test_timeout_stops_the_kernel_and_its_process_tree(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", new_code_cell(RECORD_AND_WAIT))
    start = time.monotonic()
    with pytest.raises(NotebookError) as info:
        run_notebook(make_job(tmp_path, "nb.ipynb", timeout=6))

    assert time.monotonic() - start < 10
    assert str(info.value) == "timed out after 6 s while running cell 2"
    assert info.value.timed_out
    assert info.value.output == ".taskflow/runs/exec_1/report.ipynb"
    pids = wait_for_pids(tmp_path / "pids.txt", 2, timeout=0)
    assert_gone(pids)


def test_stop_event_cancels_promptly_and_leaves_no_process(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", new_code_cell("x = 1"), new_code_cell(RECORD_AND_WAIT))
    stop = threading.Event()
    pids: list[int] = []
    stopped_at: list[float] = []

    def cancel() -> None:
        pids.extend(wait_for_pids(tmp_path / "pids.txt", 2))
        stopped_at.append(time.monotonic())
        stop.set()

    canceller = threading.Thread(target=cancel)
    canceller.start()
    with pytest.raises(NotebookError) as info:
        run_notebook(make_job(tmp_path, "nb.ipynb"), stop=stop)
    canceller.join()

    assert time.monotonic() - stopped_at[0] < 5
    assert str(info.value) == "cancelled while running cell 3"
    assert not info.value.timed_out
    assert_gone(pids)


def test_dead_kernel_fails_naming_the_cell(tmp_path):
    write_notebook(
        tmp_path / "nb.ipynb",
        new_code_cell("import os\nopen('pids.txt', 'w').write(f'{os.getpid()}\\n')"),
        new_code_cell("os.kill(os.getpid(), 9)"),
    )
    with pytest.raises(NotebookError) as info:
        run_notebook(make_job(tmp_path, "nb.ipynb"))

    assert str(info.value) == "the kernel died while running cell 3"
    assert info.value.output is not None
    assert_gone(wait_for_pids(tmp_path / "pids.txt", 1, timeout=0))


def test_progress_is_throttled_and_ends_with_the_total(tmp_path):
    cells = [new_code_cell("import time")] + [new_code_cell("time.sleep(0.02)") for _ in range(30)]
    write_notebook(tmp_path / "nb.ipynb", *cells)
    calls: list[tuple[int, int]] = []
    start = time.monotonic()
    run_notebook(make_job(tmp_path, "nb.ipynb"), progress=lambda d, t: calls.append((d, t)))
    elapsed = time.monotonic() - start

    assert calls[-1] == (32, 32)  # 31 cells and the injected one
    assert len(calls) <= 2 + 4 * elapsed
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_inspect_parameters_follows_papermill(tmp_path):
    write_notebook(
        tmp_path / "a" / "nb.ipynb",
        new_markdown_cell("not code"),
        params_cell('limit: int = 10  # rows\nname = "x"\n'),
    )
    write_notebook(tmp_path / "plain.ipynb", new_code_cell("limit = 1"))

    assert inspect_parameters("a/nb.ipynb", str(tmp_path)) == [
        {"name": "limit", "type": "int", "default": "10", "help": "rows"},
        {"name": "name", "type": None, "default": '"x"', "help": ""},
    ]
    assert inspect_parameters("plain.ipynb", str(tmp_path)) == []
    with pytest.raises(InvalidInput):
        inspect_parameters("/etc/passwd.ipynb", str(tmp_path))


def test_stop_set_before_the_kernel_is_up_leaves_no_kernel(tmp_path):
    write_notebook(tmp_path / "nb.ipynb", new_code_cell("result = 1"))
    stop = threading.Event()
    stop.set()
    before = {c.pid for c in psutil.Process().children(recursive=True)}  # other tests' workers
    with pytest.raises(NotebookError, match=r"^cancelled while starting the kernel$"):
        run_notebook(make_job(tmp_path, "nb.ipynb"), stop=stop)
    children = psutil.Process().children(recursive=True)
    left = [c.pid for c in children if c.pid not in before]
    assert [pid for pid in left if status(pid) != psutil.STATUS_ZOMBIE] == []
