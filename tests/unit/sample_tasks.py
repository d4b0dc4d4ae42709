"""Importable task callables for tests (``tests.unit.sample_tasks:NAME``)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def add(a, b):
    return a + b


def with_upstream(upstream, scale=1):
    return sum(v for v in upstream.values() if isinstance(v, (int, float))) * scale


def with_context(context):
    return {"task": context["task"], "attempt": context["attempt"]}


def noisy():
    print("to stdout")
    print("to stderr", file=sys.stderr)
    return "done"


def boom():
    raise RuntimeError("boom")


def sleep(seconds=600):
    time.sleep(seconds)
    return "woke"


def fail_until(marker, times):
    """Fail the first ``times`` calls (counted in file ``marker``), then succeed."""
    count = int(Path(marker).read_text()) if os.path.exists(marker) else 0
    with open(marker, "w") as fh:
        fh.write(str(count + 1))
    if count < times:
        raise ValueError(f"attempt {count + 1} fails")
    return count + 1


def not_json():
    return {1, 2, 3}


def pick(choice):
    return choice


# -- recording callables for property tests ---------------------------------------------
import itertools  # noqa: E402
import threading  # noqa: E402

LOG: list[tuple[str, str, str, int, int]] = []
_tick = itertools.count()
_active = {"now": 0, "peak": 0}
_lock = threading.Lock()


def record(context, fail_attempts=0):
    """Log start/end ticks; fail while ``attempt <= fail_attempts``."""
    ex, name, attempt = context["execution_id"], context["task"], context["attempt"]
    LOG.append((ex, name, "start", attempt, next(_tick)))
    LOG.append((ex, name, "end", attempt, next(_tick)))
    if attempt <= fail_attempts:
        raise ValueError(f"{name} fails attempt {attempt}")
    return attempt


def concurrent(seconds=0.05):
    """Track the peak number of tasks running at once."""
    with _lock:
        _active["now"] += 1
        _active["peak"] = max(_active["peak"], _active["now"])
    time.sleep(seconds)
    with _lock:
        _active["now"] -= 1
    return _active["peak"]


def items(n=10):
    """A list for a mapped task to map over; ticks its end like ``record``."""
    return list(range(n))


def mapped_record(context, item, map_index, fail_items=(), fail_attempts=1):
    """An instance of a mapped task: logs ``(execution, "task[i]", "start"/"end", attempt,
    tick)``; fails while ``attempt <= fail_attempts`` when ``item`` is in ``fail_items``."""
    ex, attempt = context["execution_id"], context["attempt"]
    key = f"{context['task']}[{map_index}]"
    LOG.append((ex, key, "start", attempt, next(_tick)))
    LOG.append((ex, key, "end", attempt, next(_tick)))
    if item in fail_items and attempt <= fail_attempts:
        raise ValueError(f"item {item} fails attempt {attempt}")
    return item * 10


def logged_items(context, n=10):
    """A list of ``n`` items, logging its start and end ticks as ``record`` does."""
    LOG.append((context["execution_id"], context["task"], "start", context["attempt"], next(_tick)))
    LOG.append((context["execution_id"], context["task"], "end", context["attempt"], next(_tick)))
    return list(range(n))
