"""Faults of issue 15 on the HTTP side, each against a real server (pytest-jupyter)."""

from __future__ import annotations

import pytest

MINIMAL = {
    "name": "Bare Minimum",
    "tasks": [
        {"name": "a"},
        {"name": "b", "type": "branch", "params": {"next": "c"}},
        {"name": "c", "dependencies": ["b"]},
    ],
}
TASK_DEFAULTS = {
    "type": "python",
    "params": {},
    "dependencies": [],
    "retries": 0,
    "retry_delay": 1,
    "retry_backoff": 2,
    "timeout": None,
    "trigger_rule": "none_failed_min_one_success",
}


@pytest.mark.parametrize("route", ["list", "one"])
async def test_get_workflows_returns_every_documented_field_with_its_default(api, route):
    execution = await api.submit(MINIMAL)
    wid = execution["workflowId"]
    if route == "list":
        status, body, _ = await api("GET", "workflows")
        got = next(w for w in body if w["id"] == wid)
    else:
        status, got, _ = await api("GET", "workflows", wid)
    assert status == 200
    assert {k: got[k] for k in ("description", "version", "tags", "owner")} == {
        "description": None,
        "version": 1,
        "tags": [],
        "owner": None,
    }
    assert got["max_parallel"] is None and got["parameters"] == {}
    assert got["name"] == "Bare Minimum" and got["revision"] == 1
    assert got["tasks"][0] == {**TASK_DEFAULTS, "name": "a"}
    assert got["tasks"][1] == {
        **TASK_DEFAULTS,
        "name": "b",
        "type": "branch",
        "params": {"next": "c"},
    }
    assert got["tasks"][2] == {**TASK_DEFAULTS, "name": "c", "dependencies": ["b"]}


async def test_get_workflows_keeps_what_was_posted(api):
    posted = {
        "id": "kept",
        "name": "Kept",
        "description": "as posted",
        "version": "1.0.0",
        "tags": ["etl"],
        "owner": "me",
        "max_parallel": 2,
        "parameters": {"n": 3},
        "tasks": [
            {
                "name": "a",
                "type": "python",
                "params": {"code": "result = n"},
                "dependencies": [],
                "retries": 2,
                "retry_delay": 0.5,
                "retry_backoff": 1.5,
                "timeout": 30,
                "trigger_rule": "all_done",
            }
        ],
    }
    await api.submit(posted)
    status, got, _ = await api("GET", "workflows", "kept")
    assert status == 200
    assert {
        k: v for k, v in got.items() if k not in ("revision", "createdAt", "updatedAt")
    } == posted
