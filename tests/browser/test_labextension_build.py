"""The labextension as shipped: installed and enabled, and its TypeScript checks.

These need no browser; they live beside the browser tests because they test
the same package. The TypeScript checks run here so that `python -m pytest`
(the CI command) covers them: `jlpm lint:check` (strict `tsc --noEmit` on
sources and tests, `prettier --check`) and `jlpm test` (the model, stream and
layout unit tests under `node --test`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LABEXTENSION = Path(__file__).resolve().parents[2] / "labextension"


def test_labextension_is_installed_and_enabled() -> None:
    """`jupyter labextension list` (of this interpreter) shows it enabled and OK."""
    out = subprocess.run(
        [sys.executable, "-m", "jupyterlab.labextensions", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)
    line = next((ln for ln in text.splitlines() if "pytaskflow-jupyter" in ln), None)
    assert line is not None, text
    assert re.search(r"pytaskflow-jupyter v\S+ enabled\s+OK", line), line


def _jlpm() -> str:
    beside = Path(sys.executable).with_name("jlpm")
    found = str(beside) if beside.exists() else shutil.which("jlpm")
    if found is None:
        pytest.fail("jlpm not found: install jupyterlab (or jupyter_builder), e.g. `.[test]`")
    return found


def _run(*args: str) -> str:
    out = subprocess.run(
        [_jlpm(), *args],
        cwd=LABEXTENSION,
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = out.stdout + out.stderr
    assert out.returncode == 0, f"jlpm {' '.join(args)} failed:\n{text[-5000:]}"
    return text


@pytest.fixture(scope="module")
def node_modules() -> None:
    # `pip install -e .` already ran it (the build hook); then this is a no-op.
    if not (LABEXTENSION / "node_modules" / ".yarn-state.yml").exists():
        _run("install")


def test_typescript_lint_and_types(node_modules: None) -> None:
    text = _run("lint:check")
    assert "All matched files use Prettier code style" in text, text


def test_typescript_unit_tests(node_modules: None) -> None:
    text = _run("test")
    assert re.search(r"^# fail 0$", text, re.M), text
    passed = re.search(r"^# pass (\d+)$", text, re.M)
    assert passed and int(passed.group(1)) >= 20, text
