"""The labextension's TypeScript API types are the served OpenAPI document's.

``labextension/src/generated/openapi.ts`` is what ``jlpm gen:types`` makes of
``openapi("/")``: ``scripts/dump_openapi.py``, then ``openapi-typescript``, then
``prettier``. ``src/model.ts`` and ``src/api.ts`` alias its schemas instead of
copying them, so a schema change that the frontend has not been regenerated for
(a field added, renamed or made nullable) fails here, and the TypeScript that no
longer fits the new types fails ``jlpm lint:check`` once it is regenerated.

The types are made again in a temporary folder with the labextension's own
``node_modules`` (which ``pip install -e .`` installs through the build hook), so
the check runs the pinned openapi-typescript and prettier, not whatever is on PATH.
Without ``node_modules`` the test fails rather than skips: a skip would let the
types drift unseen.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LABEXTENSION = ROOT / "labextension"
GENERATED = "src/generated/openapi.ts"
# The options of the `gen:types` script (test_gen_types_script_uses_these_options
# keeps the two the same).
OPTIONS = ("--default-non-nullable", "false", "--empty-objects-unknown")
FIX = "run `jlpm gen:types` in labextension/ and commit src/generated/openapi.ts"


def _bin(name: str) -> str:
    path = LABEXTENSION / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run `jlpm install` in labextension/ "
            "(`pip install -e .` does it) to check the generated API types"
        )
    if shutil.which("node") is None:
        pytest.fail("node is not on PATH: Node.js >= 20 is needed to check the API types")
    return str(path)


def _run(args: list[str], *, cwd: Path = ROOT, stdin: str | None = None) -> str:
    out = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{(out.stdout + out.stderr)[-5000:]}"
    return out.stdout


def _generate(tmp_path: Path) -> str:
    """What `jlpm gen:types` would write to src/generated/openapi.ts now."""
    spec = tmp_path / "openapi.json"
    spec.write_text(_run([sys.executable, str(ROOT / "scripts" / "dump_openapi.py")]))
    raw = tmp_path / "openapi.ts"
    _run([_bin("openapi-typescript"), str(spec), "-o", str(raw), *OPTIONS])
    # Formatted as if it were the committed file: same prettier config and ignores.
    return _run(
        [_bin("prettier"), "--stdin-filepath", GENERATED],
        cwd=LABEXTENSION,
        stdin=raw.read_text(encoding="utf-8"),
    )


def test_dump_openapi_prints_the_served_document() -> None:
    from pytaskflow_jupyter.server.openapi import openapi

    printed = _run([sys.executable, str(ROOT / "scripts" / "dump_openapi.py")])
    assert json.loads(printed) == openapi("/")


def test_gen_types_script_uses_these_options() -> None:
    package = json.loads((LABEXTENSION / "package.json").read_text(encoding="utf-8"))
    script = package["scripts"]["gen:types"]
    command = f"openapi-typescript openapi.json -o {GENERATED} {' '.join(OPTIONS)}"
    assert command in script, f"gen:types is {script!r}; this test runs {command!r}"
    assert f"prettier --write {GENERATED}" in script, script


def test_generated_types_match_the_openapi_document(tmp_path: Path) -> None:
    expected = _generate(tmp_path)
    committed_path = LABEXTENSION / GENERATED
    committed = committed_path.read_text(encoding="utf-8") if committed_path.exists() else ""
    if committed != expected:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                f"committed {GENERATED}",
                "generated from openapi('/')",
            )
        )
        pytest.fail(
            f"labextension/{GENERATED} is out of date with the OpenAPI document: {FIX}.\n"
            f"{diff[:8000]}",
            pytrace=False,
        )
