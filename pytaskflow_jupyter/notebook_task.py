"""Notebook tasks (SPEC section 9): one attempt runs a notebook under the root in a fresh
kernel and leaves its executed copy beside the execution's other files.

``run_notebook(job)`` is what ``kinds.NotebookKind.run`` calls in a worker; it returns
``(result, output)`` or raises ``NotebookError`` (a ``TaskCodeError``) carrying the failing
cell's ``traceback_text`` and the saved notebook's ``output`` path. ``inspect_parameters``
describes a notebook's ``parameters`` cell for the REST route.

Design, and why:

* **Paths.** The notebook's real path (symlinks followed) must lie under the real root
  before anything opens it; ``os.path.realpath`` and ``isfile`` only ask the file system.
* **Parameters: papermill.** Its ``parameterize_notebook`` *is* the convention SPEC cites
  (a cell tagged ``injected-parameters`` after the ``parameters`` cell, at the top without
  one, replacing a stale injected cell of an earlier run), its translators write literals
  for the kernel's language (escaping strings, ``float('nan')``, nested dicts), and its
  per-language ``inspect`` parses ``limit: int = 10  # rows`` exactly as ``papermill
  --help-notebook`` does. We load with ``papermill.iorw.load_notebook_node`` (the metadata
  ``parameterize_notebook`` expects), and call the translator's ``inspect`` rather than
  ``inspect_notebook``, which formats the *path* with ``str.format`` (a ``{`` in a file
  name breaks it) and needs language metadata that plain notebooks lack. The execution's
  parameters a notebook takes are the names its ``parameters`` cell assigns at top level
  (``ast``; papermill's inspection when the cell is not plain Python, e.g. has magics).
* **Execution: nbclient, cell by cell.** ``NotebookClient.async_execute_cell`` runs each
  cell, but we own the kernel's life instead of ``async_setup_kernel``: that one installs
  SIGINT/SIGTERM handlers on the main thread's loop and resets them to the defaults on exit
  (clobbering a server's or a process worker's), and it cannot stop at a deadline covering
  the whole run, kernel start-up included. The asyncio loop runs in a helper thread (never
  the caller's loop, never its signals); a watchdog task checks the deadline and ``stop``
  every ``_POLL`` seconds and, when either passes, kills the kernel's process tree
  (collected with psutil first, so grandchildren that left the process group go too).
  The caller's thread waits on a queue, so ``progress`` is called and the cells' streams
  are written in the worker's own thread (whose ``sys.stdout`` capture records them).
* **The result** is read after the last cell by a *silent* execute request whose
  ``user_expressions`` JSON-encode ``result`` in the kernel: no cell is added, nothing is
  printed, ``execution_count`` does not move, no name is left in the namespace.
* **Cell numbers** in messages are 1-based among ALL cells of the *saved* notebook
  (markdown and the injected cell included): the number a reader counts in the file the
  panel opens.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import hashlib
import json
import keyword
import logging
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput, NotFound, Problem, TaskCodeError, TaskFlowError

if TYPE_CHECKING:
    import psutil
    from nbformat import NotebookNode

    from .tasks import Job

__all__ = ["NotebookError", "inspect_parameters", "run_notebook", "safe_file_name"]

log = logging.getLogger(__name__)
# papermill warns through its logger ("no cell with tag 'parameters'"), which has no
# handler: Python's last resort would print it into the task's captured stderr.
logging.getLogger("papermill").addHandler(logging.NullHandler())

Json = dict[str, Any]
Progress = Callable[[int, int], None]
Logs = Callable[[str, str], None]  # the cells' stdout and stderr so far

_POLL = 0.05  # seconds between the watchdog's looks at the deadline and the stop event
_PROGRESS_EVERY = 0.25  # at most ~4 progress calls a second
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

# Evaluated in the kernel's namespace through user_expressions: an exec in a private dict,
# so neither ``json`` nor a helper name is left behind. ensure_ascii keeps the JSON text on
# one ASCII line, whose repr (the text/plain the kernel sends) literal_eval undoes.
_ENCODE = """\
import json
if 'result' not in ns:
    out = 'null'
else:
    v = ns['result']
    try:
        out = json.dumps(v, allow_nan=False, ensure_ascii=True)
    except Exception:
        try:
            r = repr(v)
        except Exception:
            r = '<' + type(v).__name__ + '>'
        out = json.dumps({'summary': r[:200] + ('...' if len(r) > 200 else ''),
                          'type': type(v).__name__, 'json': False})
"""
_RESULT_EXPR = f"(lambda d: (exec({_ENCODE!r}, d), d['out'])[1])({{'ns': locals()}})"


class NotebookError(TaskCodeError):
    """A notebook attempt that failed: a cell raised, the kernel died or could not start,
    the timeout passed, the run was cancelled, or the notebook cannot be used.

    ``traceback_text`` is the failing cell's traceback without ANSI colours; ``output``
    the saved notebook's path (relative to the root), None when nothing was saved;
    ``timed_out`` tells a timeout from the other failures."""

    code = "notebook_error"

    def __init__(
        self,
        message: str,
        *,
        traceback_text: str | None = None,
        output: str | None = None,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.traceback_text = traceback_text
        self.output = output
        self.timed_out = timed_out


# -- paths -------------------------------------------------------------------------------


def _path_problem(code: str, detail: str) -> InvalidInput:
    """A refused notebook path, located at ``path`` (the route's query parameter)."""
    return InvalidInput(detail, [Problem("path", code, detail)], code=code)


def resolve_notebook(path: str, root_dir: str) -> str:
    """The real path of notebook ``path`` (relative to ``root_dir``); ``InvalidInput`` when
    it is absolute, not a notebook or resolves outside the root, ``NotFound`` when missing.
    Never opens the file."""
    root = os.path.realpath(root_dir)
    if not path or "\x00" in path or os.path.isabs(path) or PurePath(path).drive:
        raise _path_problem(
            "path_outside_root",
            f"notebook path {path!r} must be relative to the server's root directory",
        )
    if not path.endswith(".ipynb"):
        raise _path_problem("not_a_notebook", f"{path!r} is not a notebook (.ipynb)")
    real = os.path.realpath(os.path.join(root, path))
    if os.path.commonpath([root, real]) != root:
        raise _path_problem(
            "path_outside_root",
            f"notebook {path!r} resolves to a file outside the server's root directory; "
            "it was not read",
        )
    if not os.path.isfile(real):
        raise NotFound(f"notebook {path!r} not found under the server's root directory")
    return real


def safe_file_name(name: str) -> str:
    """``name`` when it is a safe file name, else its safe characters and a hash of it
    (deterministic, and two names never share a file: ``a b`` is not ``a_b``)."""
    cleaned = _UNSAFE.sub("_", name)
    if cleaned == name and 0 < len(name) <= 100 and not name.startswith("."):
        return name
    digest = hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{cleaned.lstrip('.')[:80] or 'task'}-{digest}"


def _output_path(job: Job, root: str) -> tuple[str, str]:
    """Where this attempt saves its notebook: (absolute, as reported). The report is
    relative to the root, or absolute when ``runs_dir`` lies elsewhere."""
    runs = job.runs_dir or os.path.join(root, ".taskflow", "runs")
    index = getattr(job, "map_index", None)  # mapped instances (SPEC 11) get a file each
    name = job.task if index is None else f"{job.task}[{index}]"
    path = os.path.join(runs, safe_file_name(job.execution_id), safe_file_name(name) + ".ipynb")
    real_root, real = os.path.realpath(root), os.path.realpath(path)
    if os.path.commonpath([real_root, real]) == real_root:
        return path, PurePath(os.path.relpath(real, real_root)).as_posix()
    return path, real


# -- parameters --------------------------------------------------------------------------


def _load(real: str) -> NotebookNode:
    from papermill.iorw import load_notebook_node

    try:
        nb: NotebookNode = load_notebook_node(real)
    except (OSError, ValueError) as exc:  # unreadable, not JSON, not UTF-8
        raise InvalidInput(f"cannot read notebook: {exc}", code="invalid_notebook") from exc
    return nb


def _parameters_cell(nb: NotebookNode) -> NotebookNode | None:
    from papermill.utils import find_first_tagged_cell_index

    index = find_first_tagged_cell_index(nb, "parameters")
    return None if index < 0 else nb.cells[index]


def _translator(nb: NotebookNode, kernel: str | None = None, language: str | None = None) -> Any:
    from papermill.translators import papermill_translators

    spec = nb.metadata.get("kernelspec", {})
    kernel = kernel or spec.get("name") or "python3"
    language = language or nb.metadata.get("language_info", {}).get("name") or spec.get("language")
    return papermill_translators.find_translator(kernel, language or "python")


def _inspect(nb: NotebookNode) -> list[Any]:
    cell = _parameters_cell(nb)
    if cell is None:
        return []
    try:
        return list(_translator(nb).inspect(cell))
    except Exception as exc:  # papermill: no translator, or one that cannot inspect
        log.debug("cannot inspect the parameters cell: %s", exc)
        return []


def inspect_parameters(path: str, root_dir: str) -> list[Json]:
    """The parameters a notebook's ``parameters`` cell declares, papermill's convention:
    ``limit: int = 10  # rows`` -> ``{"name": "limit", "type": "int", "default": "10",
    "help": "rows"}`` (``type`` None when not annotated). Raises ``InvalidInput`` or
    ``NotFound`` for a path that ``resolve_notebook`` refuses."""
    nb = _load(resolve_notebook(path, root_dir))
    return [
        {
            "name": p.name,
            "type": None if p.inferred_type_name in (None, "None") else p.inferred_type_name,
            "default": p.default,
            "help": p.help,
        }
        for p in _inspect(nb)
    ]


def _assigned(nb: NotebookNode) -> set[str]:
    """The names the ``parameters`` cell assigns at its top level."""
    cell = _parameters_cell(nb)
    if cell is None:
        return set()
    try:
        body = ast.parse(cell.source).body
    except SyntaxError:  # magics, another language: papermill's line-based reading
        return {p.name for p in _inspect(nb)}
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.Assign):
            targets: list[ast.expr] = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value is not None:
            targets = [node.target]
        else:
            continue
        for target in targets:
            names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def _injected(nb: NotebookNode, job: Job) -> Json:
    """What the injected cell assigns, later ones winning: ``params.parameters``, the
    execution's parameters the notebook assigns, the mapped ``item``, ``upstream``."""
    values: Json = dict(job.params.get("parameters") or {})
    names = _assigned(nb)
    values.update((k, v) for k, v in job.exec_params.items() if k in names)
    index = getattr(job, "map_index", None)
    if index is not None:
        values.update(item=getattr(job, "item", None), map_index=index)
    values["upstream"] = job.upstream
    bad = sorted(k for k in values if not k.isidentifier() or keyword.iskeyword(k))
    if bad:
        raise NotebookError(f"parameter names must be identifiers: {', '.join(map(repr, bad))}")
    return values


def _kernelspec(name: str) -> Any:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        return KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel as exc:
        raise NotebookError(f"no kernel named {name!r} is installed") from exc


def _prepare(nb: NotebookNode, job: Job) -> tuple[NotebookNode, str]:
    """The notebook to run (parameters injected, the kernel used recorded) and its kernel."""
    from papermill.parameterize import parameterize_notebook

    kernel = job.params.get("kernel") or nb.metadata.get("kernelspec", {}).get("name")
    kernel = kernel or "python3"
    spec = _kernelspec(kernel)
    values = _injected(nb, job)
    try:
        nb = parameterize_notebook(nb, values, kernel_name=kernel, language=spec.language)
    except Exception as exc:  # papermill: no translator for the kernel's language
        raise NotebookError(f"cannot inject parameters for kernel {kernel!r}: {exc}") from exc
    nb.metadata["kernelspec"] = {
        "name": kernel,
        "display_name": spec.display_name,
        "language": spec.language,
    }
    return nb, kernel


# -- the kernel --------------------------------------------------------------------------


def _tree(pid: int | None) -> list[psutil.Process]:
    import psutil

    if pid is None:
        return []
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _kill(procs: list[psutil.Process]) -> None:
    """Kill what is still running of ``procs`` and wait for it to go."""
    import psutil

    alive = [p for p in procs if _running(p)]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    # not psutil.wait_procs: an orphan's zombie waits for init, which may never reap it
    deadline = time.monotonic() + 5
    while alive and time.monotonic() < deadline:
        time.sleep(0.01)
        alive = [p for p in alive if _running(p)]


def _running(proc: psutil.Process) -> bool:
    import psutil

    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


class _Run:
    """One attempt's kernel: start, cells, result, shutdown, in the helper thread's loop.
    ``events`` carries ``("progress", done, total)`` to the caller's thread."""

    def __init__(
        self,
        nb: NotebookNode,
        kernel: str,
        folder: str,
        timeout: float | None,
        stop: threading.Event | None,
        events: queue.SimpleQueue[tuple[str, Any, Any]],
    ) -> None:
        from nbclient import NotebookClient

        self.client = NotebookClient(
            nb, kernel_name=kernel, timeout=None, resources={"metadata": {"path": folder}}
        )
        self.nb = nb
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.stop = stop
        self.events = events
        self.current: int | None = None  # the running cell's index
        self.phase = "starting the kernel"
        self.km: Any = None

    def where(self) -> str:
        if self.current is not None:
            return f"while running cell {self.current + 1}"
        return f"while {self.phase}"

    def stop_reason(self) -> NotebookError | None:
        if self.stop is not None and self.stop.is_set():
            return NotebookError(f"cancelled {self.where()}")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return NotebookError(
                f"timed out after {self.timeout:g} s {self.where()}", timed_out=True
            )
        return None

    async def main(self) -> Any:
        """The watchdog: run ``_work`` until it ends, the deadline passes or ``stop`` is set."""
        from nbclient.exceptions import CellExecutionError

        work = asyncio.ensure_future(self._work())
        graceful = False
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=_POLL)
                if done:
                    exc = work.exception()
                    graceful = exc is None or isinstance(exc, CellExecutionError)
                    return work.result()
                reason = self.stop_reason()
                if reason is not None:
                    work.cancel()
                    # nbclient turns the cancel into DeadKernelError
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await work
                    raise reason
        finally:
            await self._shutdown(graceful)

    async def _work(self) -> Any:
        from jupyter_core.utils import ensure_async

        client = self.client
        self.km = client.create_kernel_manager()
        await client.async_start_new_kernel()
        await client.async_start_new_kernel_client()
        assert client.kc is not None
        info = await client.async_wait_for_reply(await ensure_async(client.kc.kernel_info()))
        if info is not None and "language_info" in info["content"]:
            self.nb.metadata["language_info"] = info["content"]["language_info"]
        code = [i for i, cell in enumerate(self.nb.cells) if cell.cell_type == "code"]
        for done, index in enumerate(code, 1):
            self.current = index
            count = client.code_cells_executed + 1
            await client.async_execute_cell(self.nb.cells[index], index, execution_count=count)
            self.events.put(("progress", done, len(code)))
        if not code:
            self.events.put(("progress", 0, 0))
        self.current, self.phase = None, "reading the result"
        client.set_widgets_metadata()
        return await self._result()

    async def _result(self) -> Any:
        client = self.client
        assert client.kc is not None
        msg_id = client.kc.execute(
            "", silent=True, store_history=False, user_expressions={"result": _RESULT_EXPR}
        )
        reply = await client.async_wait_for_reply(msg_id)
        value = (reply or {}).get("content", {}).get("user_expressions", {}).get("result", {})
        if value.get("status") != "ok":  # not a Python kernel, or an odd namespace
            log.debug("cannot read the notebook's result: %s", value.get("evalue"))
            return None
        return json.loads(ast.literal_eval(value["data"]["text/plain"]))

    async def _shutdown(self, graceful: bool) -> None:
        """Stop the kernel; afterwards its process tree is gone (killed if need be)."""
        km, kc = self.km, self.client.kc
        if km is None:
            return
        procs = _tree(getattr(km.provisioner, "pid", None))
        if not graceful:
            _kill(procs)
        try:
            if kc is not None:
                kc.stop_channels()
            if km.has_kernel:
                await km.shutdown_kernel(now=not graceful)
            else:
                await km.cleanup_resources()
        except RuntimeError as exc:  # jupyter_client: "No kernel is running!"
            log.debug("kernel shutdown: %s", exc)
        finally:
            self.client.kc = self.client.km = None
            _kill(procs)  # what a graceful shutdown left (subprocesses of the notebook)

    def error(self, exc: BaseException) -> NotebookError:
        """The attempt's error for what ``main`` raised."""
        from nbclient.exceptions import CellExecutionError, DeadKernelError

        if isinstance(exc, NotebookError):
            return exc
        if isinstance(exc, CellExecutionError) and self.current is not None:
            return self._cell_error(exc)
        if isinstance(exc, DeadKernelError):
            return NotebookError(f"the kernel died {self.where()}")
        return NotebookError(f"{type(exc).__name__} {self.where()}: {exc}")

    def _cell_error(self, exc: Any) -> NotebookError:
        assert self.current is not None
        cell = self.nb.cells[self.current]
        err = next((o for o in cell.outputs if o.get("output_type") == "error"), None)
        ename = err.get("ename") if err else exc.ename
        evalue = err.get("evalue") if err else exc.evalue
        tb = "\n".join(err.get("traceback", [])) if err else str(exc.traceback)
        return NotebookError(
            f"cell {self.current + 1}: {ename}: {evalue}", traceback_text=_ANSI.sub("", tb)
        )


def _execute(run: _Run, progress: Progress | None, logs: Logs | None = None) -> Any:
    """Run ``run.main`` in a helper thread; relay its progress (and the cells' stream
    output so far, ``logs``) in this thread."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(asyncio.run(run.main()))
        except BaseException as exc:
            outcome.append(exc)
        finally:
            run.events.put(("done", None, None))

    thread = threading.Thread(target=target, name="taskflow-notebook", daemon=True)
    thread.start()
    last, held = 0.0, None  # held: a count the throttle kept back, sent when due
    written = ("", "")  # the streams last handed to ``logs``
    while True:
        try:
            kind, done, total = run.events.get(timeout=_PROGRESS_EVERY)
        except queue.Empty:  # a long cell after a fast one: send the count it held back
            kind, (done, total) = "held", held or (0, 0)
            if held is None:
                continue
        if kind == "done":
            break
        now = time.monotonic()
        if progress is None:
            continue
        if done == total or now - last >= _PROGRESS_EVERY:
            last, held = now, None
            try:
                progress(done, total)
                if logs is not None and (streams := _streams(run.nb)) != written:
                    written = streams
                    logs(*streams)
            except Exception:
                log.exception("progress callback failed")
        else:
            held = (done, total)
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise run.error(outcome[0]) from outcome[0]
    return outcome[0]


# -- one attempt -------------------------------------------------------------------------


def _save(nb: NotebookNode, path: str) -> None:
    import nbformat

    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
    try:
        nbformat.write(nb, tmp)  # type: ignore[no-untyped-call]
        os.replace(tmp, path)  # a reader never sees half a notebook
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _streams(nb: NotebookNode) -> tuple[str, str]:
    """The stdout and stderr text of the cells so far (read while another thread runs
    them: a list that grows meanwhile is read as far as it got)."""
    out: list[str] = []
    err: list[str] = []
    for cell in list(nb.cells):
        for item in list(cell.get("outputs", ())):
            if item.get("output_type") == "stream":
                (err if item.get("name") == "stderr" else out).append(item.get("text", ""))
    return "".join(out), "".join(err)


def _write_streams(nb: NotebookNode) -> None:
    for cell in nb.cells:
        for out in cell.get("outputs", ()):
            if out.get("output_type") == "stream":
                stream = sys.stderr if out.get("name") == "stderr" else sys.stdout
                stream.write(out.get("text", ""))


def run_notebook(
    job: Job,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
    logs: Logs | None = None,
) -> tuple[Any, str]:
    """Run one attempt of a notebook task; returns (result, output path relative to the
    root). ``stop``: set it to cancel (the kernel is stopped at once); ``progress(done,
    total)``: called in this thread after code cells, at most ~4 times a second, always
    after the last one. Raises ``NotebookError``."""
    root = job.root_dir or os.getcwd()
    try:
        source = resolve_notebook(job.params["path"], root)
        nb = _load(source)
    except TaskFlowError as exc:
        raise NotebookError(exc.message) from exc
    nb, kernel = _prepare(nb, job)
    path, output = _output_path(job, root)
    if os.path.realpath(path) == source:
        raise NotebookError(f"the output {output!r} would overwrite the notebook itself")
    run = _Run(nb, kernel, os.path.dirname(source), job.timeout, stop, queue.SimpleQueue())
    try:
        result = _execute(run, progress, logs)
    except NotebookError as exc:
        try:
            _save(nb, path)
            exc.output = output
        except (OSError, ValueError) as save_exc:
            log.warning("cannot save the failed notebook to %s: %s", path, save_exc)
        raise
    finally:
        _write_streams(nb)
    try:
        _save(nb, path)
    except (OSError, ValueError) as exc:
        raise NotebookError(f"cannot save the executed notebook to {output!r}: {exc}") from exc
    return result, output
