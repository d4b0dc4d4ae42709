"""The browser the browser tests drive: Debian's Chromium, which `.ci/run` installs with
`apt-get` (Playwright's own browser download does not work here)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skip, saying why and what runs the test, on a machine without Chromium."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"{CHROMIUM} is not installed: `apt-get install chromium` (what .ci/run "
            "does) runs this test"
        )
