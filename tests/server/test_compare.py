"""Run comparison, revisions and reused results over REST (issue 14 items 2, 3, 5).

On the in-process server of pytest-jupyter: ``GET /executions/{a}/compare/{b}`` of a
failed execution and its fixed retry (parameters side by side, per-task fields, what
differs named), refused for executions of two workflows; ``GET /workflows/{id}/revisions``;
and ``reusedFrom`` on the tasks a retry carried over, followed back to where they ran.
"""

from __future__ import annotations

from .helpers import task, wf

FLAKY = (
    "import os\nif not os.path.exists(params['marker']): raise ValueError('no marker')\nresult = 2"
)


def definition(marker: str, scale: int = 1) -> dict:
    return wf(
        "compare-me",
        task("extract", code=f"result = {scale}"),
        task("load", "extract", code=FLAKY),
        task("report", "load", code="result = upstream['load'] * 10"),
        parameters={"marker": marker, "rows": 10},
    )


async def test_compare_a_failed_and_a_fixed_execution(api, tmp_path):
    marker = tmp_path / "marker"
    first = await api.wait((await api.submit(definition(str(marker))))["id"])
    assert first["status"] == "failed"
    marker.write_text("ok")
    status, retried, _ = await api("POST", f"executions/{first['id']}/retry", body={})
    assert status == 200
    second = await api.wait(retried["id"])
    assert second["status"] == "completed"

    status, diff, _ = await api("GET", f"executions/{first['id']}/compare/{second['id']}")
    assert status == 200
    assert (diff["a"]["id"], diff["a"]["status"]) == (first["id"], "failed")
    assert (diff["b"]["id"], diff["b"]["status"]) == (second["id"], "completed")
    assert [t["name"] for t in diff["tasks"]] == ["extract", "load", "report"]
    extract, load, report = diff["tasks"]
    assert extract["differs"] == []  # reused: the same result, status and attempts
    assert load["a"]["status"] == "failed" and load["b"]["status"] == "completed"
    assert {"status", "result", "error"} <= set(load["differs"])
    assert report["a"]["status"] == "skipped" and report["b"]["result"] == 20
    assert diff["differs"] == {"params": [], "tasks": ["load", "report"]}
    assert diff["params"] == [
        {"name": "marker", "a": str(marker), "b": str(marker), "differs": False},
        {"name": "rows", "a": 10, "b": 10, "differs": False},
    ]

    # reused results name the execution that computed them
    tasks = {t["name"]: t for t in second["tasks"]}
    assert tasks["extract"]["reusedFrom"] == first["id"]
    assert tasks["load"]["reusedFrom"] is None
    status, third, _ = await api("POST", f"executions/{second['id']}/retry", body={})
    assert status == 200
    third = await api.wait(third["id"])
    origins = {t["name"]: t["reusedFrom"] for t in third["tasks"]}
    assert origins == {"extract": first["id"], "load": second["id"], "report": second["id"]}


async def test_compare_with_different_params(api, tmp_path):
    marker = tmp_path / "marker"
    marker.write_text("ok")
    a = await api.submit(definition(str(marker)))
    status, b, _ = await api(
        "POST", "workflows/compare_me/executions", body={"params": {"rows": 40}}
    )
    assert status == 200
    await api.wait(a["id"])
    await api.wait(b["id"])
    status, diff, _ = await api("GET", f"executions/{a['id']}/compare/{b['id']}")
    assert status == 200
    assert diff["differs"]["params"] == ["rows"]
    assert {"name": "rows", "a": 10, "b": 40, "differs": True} in diff["params"]


async def test_compare_refuses_two_workflows_and_unknown_ids(api):
    a = await api.submit(wf("one", task("a")))
    b = await api.submit(wf("two", task("a")))
    status, body, _ = await api("GET", f"executions/{a['id']}/compare/{b['id']}")
    assert (status, body["code"]) == (400, "not_comparable")
    assert "'one'" in body["message"] and "'two'" in body["message"]
    status, body, _ = await api("GET", f"executions/{a['id']}/compare/exec_0")
    assert status == 404


async def test_revisions_newest_first(api):
    await api("PUT", "workflows/revs", body=wf("revs", task("a"), id="revs"))
    await api("PUT", "workflows/revs", body=wf("revs", task("a"), task("b", "a"), id="revs"))
    scheduled = wf("revs", task("a"), id="revs", schedule={"every": 3600})
    await api("PUT", "workflows/revs", body=scheduled)
    status, revisions, _ = await api("GET", "workflows/revs/revisions")
    assert status == 200
    assert [(r["revision"], r["tasks"]) for r in revisions] == [(3, 1), (2, 2), (1, 1)]
    assert revisions[0]["schedule"] == {"every": 3600}
    assert revisions[1]["schedule"] is None
    assert (await api("GET", "workflows/nope/revisions"))[0] == 404
