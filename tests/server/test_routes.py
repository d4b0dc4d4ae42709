"""Every REST route of SPEC §3 against the real server at base_url ``/a%40b/``."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
from typing import Any

import pytest

from .helpers import task, wf

SPEC_EXAMPLE = {
    "id": "my_workflow_id",
    "name": "My Workflow",
    "description": "Optional description",
    "version": "1.0.0",
    "tags": ["production", "etl"],
    "owner": "devops-team",
    "tasks": [
        {"name": "TaskA", "type": "python", "params": {}, "dependencies": []},
        {
            "name": "TaskB",
            "type": "branch",
            "params": {"next": ["TaskC"]},
            "dependencies": ["TaskA"],
        },
    ],
}
EXEC_ID = re.compile(r"^exec_[0-9a-f]+$")


async def test_documented_example_is_rejected_naming_taskc(api):
    status, body, headers = await api("POST", "workflows", body=SPEC_EXAMPLE)
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    assert "TaskC" in body["message"]
    assert body["code"] == "validation_failed"
    assert body["reason"] == "Bad Request"
    [problem] = body["errors"]
    assert problem["path"] == "tasks[1].params.next[0]"
    assert problem["code"] == "invalid_branch_target"
    assert "TaskC" in problem["detail"]
    # nothing was half-written
    assert (await api("GET", "workflows"))[1] == []
    assert (await api("GET", "executions"))[1] == []


async def test_post_workflows_returns_the_execution_at_once(api):
    fixed = {
        **SPEC_EXAMPLE,
        "tasks": [
            *SPEC_EXAMPLE["tasks"],
            {"name": "TaskC", "type": "python", "params": {}, "dependencies": ["TaskB"]},
        ],
    }
    status, execution, _ = await api("POST", "workflows", body=fixed)
    assert status == 200
    assert EXEC_ID.match(execution["id"])
    assert execution["workflowId"] == "my_workflow_id"
    assert execution["revision"] == 1
    assert execution["status"] in ("pending", "running", "completed")
    assert [t["name"] for t in execution["tasks"]] == ["TaskA", "TaskB", "TaskC"]
    assert set(execution["tasks"][0]) >= {
        "name",
        "status",
        "duration",
        "attempts",
        "startTime",
        "endTime",
        "error",
        "reason",
    }
    done = await api.wait(execution["id"])
    assert done["status"] == "completed"
    assert {t["name"]: t["status"] for t in done["tasks"]} == {
        "TaskA": "completed",
        "TaskB": "completed",
        "TaskC": "completed",
    }
    assert done["endTime"].endswith("Z")


async def test_post_does_not_wait_for_the_workflow(api):
    """A 10 s task: the POST answers while it still runs (no timing assertion: the
    execution is observed not finished after the reply)."""
    execution = await api.submit(wf("slow", task("nap", code="import time; time.sleep(10)")))
    assert execution["status"] in ("pending", "running")
    _status, now, _ = await api("GET", "executions", execution["id"])
    assert now["status"] in ("pending", "running")
    await api("POST", "executions", execution["id"], "cancel")


async def test_get_workflows_lists_definitions_as_posted(api):
    await api.submit(SPEC_EXAMPLE | {"tasks": SPEC_EXAMPLE["tasks"][:1]})
    status, listing, _ = await api("GET", "workflows")
    assert status == 200
    [item] = listing
    for key in ("id", "name", "description", "version", "tags", "owner"):
        assert item[key] == SPEC_EXAMPLE[key]
    # each task as posted, plus the defaults of the fields it left out
    assert item["tasks"][0].items() >= SPEC_EXAMPLE["tasks"][0].items()
    assert item["revision"] == 1
    assert item["createdAt"].endswith("Z") and item["updatedAt"].endswith("Z")


async def test_revisions_and_get_workflow(api):
    one = wf("Rev Flow", task("a"))
    await api.submit(one)
    await api.submit(one)  # unchanged: same revision
    status, latest, _ = await api("GET", "workflows", "rev_flow")
    assert status == 200 and latest["revision"] == 1
    two = wf("Rev Flow", task("a"), task("b", "a"))
    execution = await api.submit(two)
    assert execution["revision"] == 2
    assert (await api("GET", "workflows", "rev_flow"))[1]["revision"] == 2
    status, old, _ = await api("GET", "workflows", "rev_flow", params={"revision": 1})
    assert status == 200 and old["revision"] == 1 and len(old["tasks"]) == 1
    assert (await api("GET", "workflows", "rev_flow", params={"revision": 3}))[0] == 404
    assert (await api("GET", "workflows", "nope"))[0] == 404


async def test_version_is_returned_as_given(api):
    await api.submit(wf("v int", task("a"), version=3))
    await api.submit(wf("v str", task("a"), version="2.0"))
    await api.submit(wf("v none", task("a")))
    versions = {w["id"]: w.get("version") for w in (await api("GET", "workflows"))[1]}
    assert versions["v_int"] == 3 and versions["v_str"] == "2.0"


async def test_start_registered_workflow_with_params(api):
    definition = wf("params flow", task("echo", code="result = params.get('x')"))
    first = await api.submit(definition)
    await api.wait(first["id"])
    status, execution, _ = await api(
        "POST", "workflows", "params_flow", "executions", body={"params": {"x": 42}}
    )
    assert status == 200
    assert execution["params"] == {"x": 42}
    done = await api.wait(execution["id"])
    assert done["status"] == "completed"
    # no body at all is fine too
    status, again, _ = await api("POST", "workflows", "params_flow", "executions")
    assert status == 200 and again["params"] == {}
    # an explicit revision
    status, rev, _ = await api(
        "POST", "workflows", "params_flow", "executions", body={"revision": 1}
    )
    assert status == 200 and rev["revision"] == 1
    status, body, _ = await api(
        "POST", "workflows", "params_flow", "executions", body={"revision": 9}
    )
    assert status == 404
    status, body, _ = await api("POST", "workflows", "unknown", "executions")
    assert status == 404 and body["code"] == "not_found"


async def test_get_execution_detail(api):
    execution = await api.submit(
        wf(
            "detail",
            task("a", code="print('hi'); result = {'n': 1}"),
            task("b", "a", code="raise ValueError('boom')"),
        )
    )
    done = await api.wait(execution["id"])
    status, detail, _ = await api("GET", "executions", execution["id"])
    assert status == 200
    a, b = detail["tasks"]
    assert a["result"] == {"n": 1} and a["status"] == "completed"
    assert b["status"] == "failed" and "boom" in b["error"]
    assert "ValueError" in b["traceback"]
    assert isinstance(a["history"], list)
    assert done["status"] == "failed"
    assert (await api("GET", "executions", "exec_0000"))[0] == 404


async def test_logs_route(api):
    execution = await api.submit(
        wf(
            "logs",
            task("talk", code="import sys; print('out line'); print('err line', file=sys.stderr)"),
        )
    )
    await api.wait(execution["id"])
    status, logs, _ = await api("GET", "executions", execution["id"], "tasks", "talk", "logs")
    assert status == 200
    assert logs["executionId"] == execution["id"] and logs["task"] == "talk"
    [attempt] = logs["attempts"]
    assert attempt["attempt"] == 1
    assert "out line" in attempt["stdout"] and "err line" in attempt["stderr"]
    status, body, _ = await api("GET", "executions", execution["id"], "tasks", "nope", "logs")
    assert status == 404 and "nope" in body["message"]
    assert (await api("GET", "executions", "exec_ffff", "tasks", "talk", "logs"))[0] == 404


async def test_logs_of_a_task_name_with_slash_and_unicode(
    api, http_server_client, jp_base_url, jp_auth_header
):
    name = "a/b é"
    execution = await api.submit(wf("odd names", task(name, code="print('x')")))
    await api.wait(execution["id"])
    from urllib.parse import quote

    url = f"{jp_base_url}executions/{execution['id']}/tasks/{quote(name, safe='')}/logs"
    resp = await http_server_client.fetch(url, headers=jp_auth_header)
    assert resp.code == 200
    assert json.loads(resp.body)["task"] == name  # UTF-8 JSON (orjson), not \u escapes


async def test_cancel_and_conflicts(api):
    execution = await api.submit(
        wf("cancel me", task("nap", code="import time; time.sleep(10)"), task("after", "nap"))
    )
    await api.wait(execution["id"], statuses=("running",))
    # a running workflow cannot be deleted
    status, body, _ = await api("DELETE", "workflows", "cancel_me")
    assert status == 409 and body["code"] == "conflict"
    # retry of an active execution is a conflict
    status, body, _ = await api("POST", "executions", execution["id"], "retry")
    assert status == 409
    status, _cancelled, _ = await api("POST", "executions", execution["id"], "cancel")
    assert status == 200
    done = await api.wait(execution["id"])
    assert done["status"] == "cancelled"
    status, body, _ = await api("POST", "executions", execution["id"], "cancel")
    assert status == 409 and "cancelled" in body["message"]
    assert (await api("POST", "executions", "exec_abc", "cancel"))[0] == 404
    # now it can go
    assert (await api("DELETE", "workflows", "cancel_me"))[0] == 204
    assert (await api("GET", "workflows", "cancel_me"))[0] == 404
    assert (await api("DELETE", "workflows", "cancel_me"))[0] == 404
    # its executions stay readable
    assert (await api("GET", "executions", execution["id"]))[0] == 200


async def test_retry_resumes_from_failure(api, tmp_path):
    flag = tmp_path / "flag"
    code = f"import os\nif not os.path.exists({str(flag)!r}): raise RuntimeError('not yet')\n"
    definition = wf("flaky", task("first", code="result = 1"), task("second", "first", code=code))
    execution = await api.submit(definition)
    failed = await api.wait(execution["id"])
    assert failed["status"] == "failed"
    flag.write_text("ok")
    status, retry, _ = await api(
        "POST", "executions", execution["id"], "retry", headers={"Idempotency-Key": "retry-1"}
    )
    assert status == 200 and retry["id"] != execution["id"]
    assert retry["parentId"] == execution["id"]
    done = await api.wait(retry["id"])
    assert done["status"] == "completed"
    first = done["tasks"][0]
    assert first["status"] == "completed" and first["result"] == 1
    again = (
        await api(
            "POST", "executions", execution["id"], "retry", headers={"Idempotency-Key": "retry-1"}
        )
    )[1]
    assert again["id"] == retry["id"]
    assert (await api("POST", "executions", "exec_0", "retry"))[0] == 404


async def test_retry_with_rerun_reruns_those_tasks_and_downstream(api, tmp_path):
    """a -> b -> c and an independent d, all completed: rerun b runs b and c again and
    reuses a and d (each task appends its name to a file, so runs are counted)."""
    runs = tmp_path / "runs.txt"

    def counted(name: str, *deps: str) -> dict:
        code = f"open({str(runs)!r}, 'a').write({name!r} + '\\n')\nresult = {name!r}"
        return task(name, *deps, code=code)

    definition = wf("rerun", counted("a"), counted("b", "a"), counted("c", "b"), counted("d"))
    first = await api.wait((await api.submit(definition))["id"])
    assert first["status"] == "completed"
    status, retry, _ = await api("POST", "executions", first["id"], "retry", body={"rerun": ["b"]})
    assert status == 200, retry
    done = await api.wait(retry["id"])
    assert done["status"] == "completed" and done["parentId"] == first["id"]
    assert sorted(runs.read_text().split()) == ["a", "b", "b", "c", "c", "d"]
    before = {t["name"]: t for t in first["tasks"]}
    after = {t["name"]: t for t in done["tasks"]}
    for name in ("a", "d"):  # reused: the same attempt, not a new one
        assert after[name]["startTime"] == before[name]["startTime"], name
    for name in ("b", "c"):
        assert after[name]["startTime"] > before[name]["endTime"], name
        assert after[name]["result"] == name
    # without rerun, a retry of a completed execution reuses everything
    status, again, _ = await api("POST", "executions", retry["id"], "retry", body={})
    assert status == 200
    assert (await api.wait(again["id"]))["status"] == "completed"
    assert len(runs.read_text().split()) == 6


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"rerun": "b"}, "rerun"),
        ({"rerun": {"b": True}}, "rerun"),
        ({"rerun": None}, "rerun"),
        ({"rerun": ["b", 1]}, "rerun[1]"),
    ],
)
async def test_retry_rerun_must_be_a_list_of_task_names(api, body, path):
    execution = await api.wait((await api.submit(wf("rerun types", task("b"))))["id"])
    status, error, _ = await api("POST", "executions", execution["id"], "retry", body=body)
    assert status == 400, error
    assert error["code"] == "type_error" and "rerun" in error["message"]
    assert [p["path"] for p in error["errors"]] == [path]
    # nothing was started
    assert len((await api("GET", "executions"))[1]) == 1


async def test_retry_rerun_of_an_unknown_task_or_an_unknown_key_is_400(api):
    execution = await api.wait((await api.submit(wf("rerun names", task("b"))))["id"])
    status, error, _ = await api(
        "POST", "executions", execution["id"], "retry", body={"rerun": ["b", "nope"]}
    )
    assert status == 400, error
    assert "nope" in error["message"] and "'b'" not in error["message"]
    status, error, _ = await api(
        "POST", "executions", execution["id"], "retry", body={"re_run": ["b"]}
    )
    assert status == 400 and error["code"] == "unknown_field"
    assert error["errors"][0]["path"] == "re_run" and "rerun" in error["errors"][0]["detail"]
    assert len((await api("GET", "executions"))[1]) == 1


async def test_idempotency_key(api):
    definition = wf("idem", task("a"))
    key = {"Idempotency-Key": "k-123"}
    one = await api.submit(definition, headers=key)
    two = await api.submit(definition, headers=key)
    assert one["id"] == two["id"]
    three = await api.submit(definition)
    assert three["id"] != one["id"]
    status, four, _ = await api(
        "POST", "workflows", "idem", "executions", headers={"Idempotency-Key": "k-456"}
    )
    status, five, _ = await api(
        "POST", "workflows", "idem", "executions", headers={"Idempotency-Key": "k-456"}
    )
    assert four["id"] == five["id"]
    # the same key for another workflow is a conflict
    status, body, _ = await api("POST", "workflows", body=wf("other", task("a")), headers=key)
    assert status == 409 and body["code"] == "idempotency_key_reused"
    assert (await api("GET", "workflows", "other"))[0] == 404  # nothing written
    # a replay with a changed definition returns the execution and records no revision
    changed = wf("idem", task("a"), task("b", "a"))
    assert (await api.submit(changed, headers=key))["id"] == one["id"]
    assert (await api("GET", "workflows", "idem"))[1]["revision"] == 1
    executions = (await api("GET", "executions", params={"limit": 1000}))[1]
    assert len(executions) == 3


async def test_concurrent_idempotent_posts_start_one_execution(api):
    definition = wf("race", task("a"))
    results = await asyncio.gather(
        *[
            api("POST", "workflows", body=definition, headers={"Idempotency-Key": "same"})
            for _ in range(8)
        ]
    )
    ids = {body["id"] for status, body, _ in results if status == 200}
    assert len(ids) == 1, results


async def test_list_executions_filters_and_order(api):
    a1 = await api.submit(wf("alpha", task("a")))
    b1 = await api.submit(wf("beta", task("a", code="raise SystemError('x')")))
    a2 = (await api("POST", "workflows", "alpha", "executions"))[1]
    for e in (a1, b1, a2):
        await api.wait(e["id"])
    status, listing, headers = await api("GET", "executions")
    assert status == 200
    assert [e["id"] for e in listing] == [a2["id"], b1["id"], a1["id"]]  # newest first
    assert "X-Next-Cursor" not in headers and "Link" not in headers
    status, alphas, _ = await api("GET", "executions", params={"workflow_id": "alpha"})
    assert [e["id"] for e in alphas] == [a2["id"], a1["id"]]
    failed = (await api("GET", "executions", params={"status": "failed"}))[1]
    assert [e["id"] for e in failed] == [b1["id"]]
    both = (await api("GET", "executions", params={"status": "completed", "workflow_id": "alpha"}))[
        1
    ]
    assert len(both) == 2
    assert (await api("GET", "executions", params={"workflow_id": "nope"}))[1] == []


async def test_paging_with_cursor_and_link(api, taskflow_app):
    runner = taskflow_app.runner
    await taskflow_app.run(runner.register, wf("pages", task("a")))
    ids = []
    for _ in range(25):
        ids.append((await api("POST", "workflows", "pages", "executions"))[1]["id"])
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 10, "workflow_id": "pages"}
        if cursor:
            params["cursor"] = cursor
        status, page, headers = await api("GET", "executions", params=params)
        assert status == 200
        pages += 1
        seen += [e["id"] for e in page]
        cursor = headers.get("X-Next-Cursor")
        if cursor is None:
            assert "Link" not in headers
            break
        link = headers["Link"]
        assert link.startswith("</a%40b/executions?") and link.endswith('>; rel="next"')
        assert f"cursor={cursor}" in link and "workflow_id=pages" in link and "token" not in link
    assert pages == 3
    assert seen == list(reversed(ids))
    # default limit is 100, max 1000
    assert len((await api("GET", "executions"))[1]) == 25


async def test_openapi_route(api):
    status, doc, _ = await api("GET", "taskflow", "openapi.json")
    assert status == 200
    assert doc["openapi"].startswith("3.")
    assert doc["servers"] == [{"url": "/a%40b"}]


async def test_error_body_never_leaks_a_traceback(api, taskflow_app, monkeypatch):
    """An unexpected exception is a generic 500 with no detail (and is logged)."""

    def broken():
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(taskflow_app.runner, "list_workflows_json", broken)
    status, body, _ = await api("GET", "workflows")
    assert status == 500
    assert body == {
        "message": "Internal server error; the server log has the details",
        "reason": "Internal Server Error",
        "code": "internal_error",
        "errors": [],
    }


async def test_database_path_is_exported_for_kernels(api, db_path):
    assert os.environ["PYTASKFLOW_DB"] == str(db_path.resolve())
    assert db_path.exists()


@pytest.mark.parametrize("path", ["executionz", "ws/extra", "workflows/a/b/c"])
async def test_unknown_paths_are_404(api, path):
    status, _, _ = await api("GET", *path.split("/"))
    assert status == 404


async def test_a_large_listing_goes_gzipped_to_the_clients_that_accept_it(api):
    """``GET /workflows`` of more than 32 KiB: gzip for an ``Accept-Encoding`` that
    takes it (what browsers send), the same JSON; as it is for the others."""
    await api.submit(wf("Big", task("a"), *(task(f"t{i}", "a") for i in range(300))))

    async def get(encoding: str | None) -> Any:
        headers = {} if encoding is None else {"Accept-Encoding": encoding}
        return await api._fetch(
            "workflows", method="GET", headers=headers, decompress_response=False
        )

    plain = await get(None)
    assert "Content-Encoding" not in plain.headers and len(plain.body) > 32 * 1024
    for refused in ("identity", "br", "gzip;q=0"):
        assert (await get(refused)).body == plain.body
    zipped = await get("gzip, deflate, br")
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert int(zipped.headers["Content-Length"]) == len(zipped.body) < len(plain.body) / 10
    assert json.loads(gzip.decompress(zipped.body)) == json.loads(plain.body)
    await api.submit(wf("Small", task("a")))  # the answer changes: so does its gzip
    listing = json.loads(gzip.decompress((await get("gzip")).body))
    assert [w["name"] for w in listing] == ["Big", "Small"]
