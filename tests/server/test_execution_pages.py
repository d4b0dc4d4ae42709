"""``GET /executions/{id}?limit=&cursor=``: an execution's tasks a page at a time.

Without the two parameters the answer is as it always was (every task). With them,
``tasks`` holds the page in definition order, and the answer adds ``taskCount``,
``counts`` (every task by status, pending ones included) and ``nextCursor``; bad
values are 400 naming the parameter.
"""

from __future__ import annotations

import asyncio

import pytest

from .helpers import task, wf


def fan(n: int) -> dict:
    """A root, ``n`` tasks under it (the odd ones fail), then a join that never runs."""
    mids = [
        task(f"m{i:03d}", "root", code="raise ValueError('odd')" if i % 2 else "result = 1")
        for i in range(n)
    ]
    return wf("pages", task("root"), *mids, task("join", *(m["name"] for m in mids)))


async def test_pages_of_an_execution_cover_its_tasks_once_in_order(api):
    execution = await api.submit(fan(25))
    done = await api.wait(execution["id"])
    whole = [t["name"] for t in done["tasks"]]
    assert "taskCount" not in done and "nextCursor" not in done  # the unpaged shape
    seen, cursor, pages = [], 0, 0
    while cursor is not None:
        status, page, _ = await api(
            "GET", f"executions/{execution['id']}", params={"limit": 10, "cursor": cursor}
        )
        assert status == 200
        assert page["taskCount"] == 27
        assert page["counts"] == {
            "pending": 0, "running": 0, "completed": 14, "failed": 12, "skipped": 1,
            "cancelled": 0,
        }  # fmt: skip
        assert {k: page[k] for k in ("id", "status", "workflowId")} == {
            k: done[k] for k in ("id", "status", "workflowId")
        }
        # a page's tasks are the same objects the whole execution shows
        assert page["tasks"] == done["tasks"][cursor : cursor + 10]
        seen += [t["name"] for t in page["tasks"]]
        cursor, pages = page["nextCursor"], pages + 1
    assert seen == whole
    assert pages == 3
    status, alone, _ = await api("GET", f"executions/{execution['id']}", params={"cursor": 20})
    assert [t["name"] for t in alone["tasks"]] == whole[20:]  # a cursor pages by 100
    assert alone["nextCursor"] is None


async def test_a_page_counts_tasks_not_started_as_pending(api):
    slow = "import time\nfor _ in range(300):\n    time.sleep(0.1)"  # stoppable every 0.1 s
    execution = await api.submit(
        wf("slow", task("wait", code=slow), task("after", "wait"), task("later", "after"))
    )
    query = {"limit": 1}
    for _ in range(500):
        status, page, _ = await api("GET", f"executions/{execution['id']}", params=query)
        if page["counts"]["running"]:
            break
        await asyncio.sleep(0.02)
    assert status == 200
    assert [t["name"] for t in page["tasks"]] == ["wait"]
    assert page["counts"]["running"] == 1
    assert page["counts"]["pending"] == 2  # no rows yet: counted all the same
    assert page["nextCursor"] == 1
    status, _, _ = await api("POST", f"executions/{execution['id']}/cancel")
    assert status == 200


@pytest.mark.parametrize(
    ("query", "code", "path"),
    [
        ({"limit": 0}, "out_of_range", "limit"),
        ({"limit": 1001}, "out_of_range", "limit"),
        ({"cursor": -1}, "invalid_query", "cursor"),
        ({"cursor": "x"}, "invalid_query", "cursor"),
        ({"page": 2}, "invalid_query", "page"),
    ],
)
async def test_bad_page_queries_are_400_naming_the_parameter(api, query, code, path):
    execution = await api.submit(fan(2))
    status, body, _ = await api("GET", f"executions/{execution['id']}", params=query)
    assert status == 400
    assert body["errors"][0]["path"] == path
    assert body["errors"][0]["code"] == code
