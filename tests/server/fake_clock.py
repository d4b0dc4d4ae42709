"""A clock the tests drive across processes: ``--TaskFlowApp.clock=tests.server.fake_clock:now``
makes a server read the time from the file ``$PYTASKFLOW_TEST_CLOCK`` (Unix seconds), which
the test rewrites (atomically) to move time on for every server at once."""

from __future__ import annotations

import os
from pathlib import Path


def now() -> float:
    return float(Path(os.environ["PYTASKFLOW_TEST_CLOCK"]).read_text())


def set_time(path: Path, t: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(repr(t))
    os.replace(tmp, path)
