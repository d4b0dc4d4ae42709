"""The bad-input catalogue (reliability-anchors §c) and the SPEC §3 rejection list.

Every row is sent to the real server; each must be answered with its status and a JSON
error whose ``code`` (and, for definitions, the problem's ``code`` and ``path``) names
the problem -- never a 500, and never a half-written record.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .helpers import task, wf

GOOD = wf("ok", task("a"))
JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> bytes:
    inner = b"[" * (depth - 5) + b"]" * (depth - 5)  # inside 5 levels of the definition
    head = b'{"name": "n", "tasks": [{"name": "a", "params": {"kwargs": {"x": '
    return head + inner + b"}}}]}"


# (id, raw body, headers, status, code) -- bodies of POST /workflows
BODIES: list[tuple[str, bytes, dict[str, str], int, str]] = [
    ("no-content-type", json.dumps(GOOD).encode(), {}, 415, "unsupported_media_type"),
    (
        "text-plain",
        json.dumps(GOOD).encode(),
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
    ),
    (
        "form",
        b"name=x&tasks=y",
        {"Content-Type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
    ),
    (
        "multipart",
        b"--b\r\n\r\nx\r\n--b--",
        {"Content-Type": "multipart/form-data; boundary=b"},
        415,
        "unsupported_media_type",
    ),
    (
        "charset-latin1",
        json.dumps(GOOD).encode(),
        {"Content-Type": "application/json; charset=latin-1"},
        415,
        "unsupported_media_type",
    ),
    ("invalid-utf8", b'{"name": "\xff\xfe", "tasks": [{"name": "a"}]}', JSON, 400, "invalid_utf8"),
    ("overlong-utf8", b'{"name": "\xc0\xaf", "tasks": [{"name": "a"}]}', JSON, 400, "invalid_utf8"),
    ("bom", b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), JSON, 400, "invalid_json"),
    ("empty", b"", JSON, 400, "empty_body"),
    ("whitespace", b" \r\n\t ", JSON, 400, "empty_body"),
    ("trailing-garbage", json.dumps(GOOD).encode() + b" xyz", JSON, 400, "invalid_json"),
    ("two-documents", json.dumps(GOOD).encode() * 2, JSON, 400, "invalid_json"),
    ("truncated", b'{"name": "x", "tasks": [', JSON, 400, "invalid_json"),
    ("single-quotes", b"{'name': 'x'}", JSON, 400, "invalid_json"),
    ("js-comment", b'{"name": "x" /* c */, "tasks": []}', JSON, 400, "invalid_json"),
    (
        "raw-control-char",
        b'{"name": "a\x01b", "tasks": [{"name": "a"}]}',
        JSON,
        400,
        "invalid_json",
    ),
    (
        "nan",
        b'{"name": "x", "tasks": [{"name": "a", "timeout": NaN}]}',
        JSON,
        400,
        "invalid_number",
    ),
    (
        "infinity",
        b'{"name": "x", "tasks": [{"name": "a", "timeout": Infinity}]}',
        JSON,
        400,
        "invalid_number",
    ),
    (
        "minus-infinity",
        b'{"name": "x", "tasks": [{"name": "a", "retry_delay": -Infinity}]}',
        JSON,
        400,
        "invalid_number",
    ),
    (
        "1e999",
        b'{"name": "x", "tasks": [{"name": "a", "timeout": 1e999}]}',
        JSON,
        400,
        "invalid_number",
    ),
    (
        "5000-digit-int",
        b'{"name": "x", "tasks": [{"name": "a", "retries": ' + b"9" * 5000 + b"}]}",
        JSON,
        400,
        "invalid_number",
    ),
    (
        "duplicate-key",
        b'{"name": "x", "name": "y", "tasks": [{"name": "a"}]}',
        JSON,
        400,
        "duplicate_key",
    ),
    (
        "duplicate-nested-key",
        b'{"name": "x", "tasks": [{"name": "a", "params": {"k": 1, "k": 2}}]}',
        JSON,
        400,
        "duplicate_key",
    ),
    (
        "lone-surrogate",
        b'{"name": "x\\ud800", "tasks": [{"name": "a"}]}',
        JSON,
        400,
        "invalid_string",
    ),
    (
        "lone-surrogate-key",
        b'{"name": "x", "tasks": [{"name": "a", "params": {"\\udfff": 1}}]}',
        JSON,
        400,
        "invalid_string",
    ),
    ("depth-65", nested(65), JSON, 400, "json_too_deep"),
    ("depth-100k", b"[" * 100_000 + b"]" * 100_000, JSON, 400, "json_too_deep"),
    ("depth-100k-unclosed", b'{"a": ' + b"{" * 100_000, JSON, 400, "json_too_deep"),
    ("top-level-array", b"[]", JSON, 400, "validation_failed"),
    ("top-level-string", b'"workflow"', JSON, 400, "validation_failed"),
    ("top-level-null", b"null", JSON, 400, "validation_failed"),
    ("top-level-number", b"12", JSON, 400, "validation_failed"),
]


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"), [b[1:] for b in BODIES], ids=[b[0] for b in BODIES]
)
async def test_bad_bodies(api, raw, headers, status, code):
    got, body, resp_headers = await api("POST", "workflows", raw=raw, headers=headers)
    assert (got, body["code"]) == (status, code), body
    assert resp_headers["Content-Type"].startswith("application/json")
    assert set(body) == {"message", "reason", "code", "errors"}
    assert "Traceback" not in body["message"]
    assert (await api("GET", "workflows"))[1] == []
    assert (await api("GET", "executions"))[1] == []


async def test_depth_64_is_parsed(api):
    status, body, _ = await api("POST", "workflows", raw=nested(64), headers=JSON)
    assert status == 200, body


def _defn(**task_fields: Any) -> dict[str, Any]:
    return wf("bad", {"name": "a", **task_fields})


# (id, definition, problem code, problem path, a word the detail must contain)
DEFINITIONS: list[tuple[str, Any, str, str, str]] = [
    (
        "cycle",
        wf("c", task("a", "c"), task("b", "a"), task("c", "b")),
        "cycle_detected",
        "tasks",
        "'a'",
    ),
    (
        "self-dependency",
        wf("s", task("a", "a")),
        "self_dependency",
        "tasks[0].dependencies[0]",
        "itself",
    ),
    (
        "unknown-dependency",
        wf("u", task("a"), task("b", "TaskZ")),
        "unknown_dependency",
        "tasks[1].dependencies[0]",
        "TaskZ",
    ),
    (
        "duplicate-names",
        wf("d", task("a"), task("a")),
        "duplicate_task_name",
        "tasks[1].name",
        "'a'",
    ),
    (
        "duplicate-after-nfc",
        wf("d", task("caf\u00e9"), task("cafe\u0301")),
        "duplicate_task_name",
        "tasks[1].name",
        "caf",
    ),
    (
        "unknown-type",
        wf("t", task("a", type="shell")),
        "unknown_task_type",
        "tasks[0].type",
        "shell",
    ),
    (
        "branch-not-downstream",
        wf("b", task("a"), task("br", "a", type="branch", params={"next": ["a"]})),
        "invalid_branch_target",
        "tasks[1].params.next[0]",
        "direct downstream",
    ),
    (
        "branch-unknown-target",
        wf("b", task("br", type="branch", params={"next": "TaskC"})),
        "invalid_branch_target",
        "tasks[0].params.next[0]",
        "TaskC",
    ),
    ("dependencies-string", _defn(dependencies="b"), "type_error", "tasks[0].dependencies", "list"),
    ("retries-string", _defn(retries="3"), "type_error", "tasks[0].retries", "integer"),
    ("retries-bool", _defn(retries=True), "type_error", "tasks[0].retries", "integer"),
    ("retries-negative", _defn(retries=-1), "out_of_range", "tasks[0].retries", "range"),
    ("timeout-negative", _defn(timeout=-1), "out_of_range", "tasks[0].timeout", "range"),
    ("timeout-zero", _defn(timeout=0), "out_of_range", "tasks[0].timeout", "range"),
    (
        "retry-backoff-small",
        _defn(retry_backoff=0.5),
        "out_of_range",
        "tasks[0].retry_backoff",
        "range",
    ),
    ("params-list", _defn(params=[]), "type_error", "tasks[0].params", "object"),
    (
        "callable-not-string",
        _defn(params={"callable": 3}),
        "type_error",
        "tasks[0].params.callable",
        "string",
    ),
    ("name-null", wf("n", {"name": None}), "invalid_name", "tasks[0].name", "string"),
    ("name-empty", wf("n", {"name": ""}), "invalid_name", "tasks[0].name", "empty"),
    ("name-blank", wf("n", {"name": "   "}), "invalid_name", "tasks[0].name", "empty"),
    ("name-too-long", wf("n", {"name": "x" * 201}), "invalid_name", "tasks[0].name", "201"),
    ("name-rtl-override", wf("n", {"name": "a\u202eb"}), "invalid_name", "tasks[0].name", "U+202E"),
    ("name-nul", wf("n", {"name": "a\x00b"}), "invalid_name", "tasks[0].name", "U+0000"),
    ("workflow-name-missing", {"tasks": [{"name": "a"}]}, "required", "name", "required"),
    ("workflow-name-too-long", wf("w" * 300, task("a")), "invalid_name", "name", "300"),
    ("tasks-missing", {"name": "x"}, "required", "tasks", "required"),
    ("tasks-empty", {"name": "x", "tasks": []}, "empty_workflow", "tasks", "at least one"),
    ("tasks-not-list", {"name": "x", "tasks": {"a": 1}}, "type_error", "tasks", "list"),
    ("task-not-object", {"name": "x", "tasks": ["a"]}, "type_error", "tasks[0]", "object"),
    (
        "typo-dependancies",
        wf("x", task("a"), {"name": "b", "dependancies": ["a"]}),
        "unknown_field",
        "tasks[1].dependancies",
        "dependancies",
    ),
    ("unknown-top-key", {**GOOD, "schedul": "daily"}, "unknown_field", "schedul", "schedul"),
    ("schedule-not-object", {**GOOD, "schedule": "daily"}, "type_error", "schedule", "object"),
    (
        "schedule-bad-cron",
        {**GOOD, "schedule": {"cron": "every day"}},
        "invalid_cron",
        "schedule.cron",
        "5 fields",
    ),
    ("bad-id", {**GOOD, "id": "../etc"}, "invalid_id", "id", "../etc"),
    ("tags-not-strings", {**GOOD, "tags": [1]}, "type_error", "tags", "strings"),
    ("version-float", {**GOOD, "version": 1.5}, "type_error", "version", "string"),
    (
        "trigger-rule",
        _defn(trigger_rule="sometimes"),
        "unknown_trigger_rule",
        "tasks[0].trigger_rule",
        "sometimes",
    ),
    (
        "notebook-parent-path",
        _defn(type="notebook", params={"path": "../x.ipynb"}),
        "path_outside_root",
        "tasks[0].params.path",
        "../x.ipynb",
    ),
    (
        "notebook-absolute-path",
        _defn(type="notebook", params={"path": "/etc/x.ipynb"}),
        "path_outside_root",
        "tasks[0].params.path",
        "/etc",
    ),
    (
        "notebook-windows-path",
        _defn(type="notebook", params={"path": "C:\\x.ipynb"}),
        "path_outside_root",
        "tasks[0].params.path",
        "C:",
    ),
    (
        "notebook-unc-path",
        _defn(type="notebook", params={"path": "\\\\host\\share\\x.ipynb"}),
        "path_outside_root",
        "tasks[0].params.path",
        "host",
    ),
    (
        "notebook-nul-path",
        _defn(type="notebook", params={"path": "a\x00.ipynb"}),
        "path_outside_root",
        "tasks[0].params.path",
        "relative",
    ),
    ("notebook-no-path", _defn(type="notebook"), "required", "tasks[0].params.path", "path"),
]


@pytest.mark.parametrize(
    ("definition", "code", "path", "word"),
    [d[1:] for d in DEFINITIONS],
    ids=[d[0] for d in DEFINITIONS],
)
async def test_rejected_definitions(api, definition, code, path, word):
    status, body, _ = await api("POST", "workflows", body=definition)
    assert status == 400, body
    assert body["code"] == "validation_failed"
    problems = [(p["code"], p["path"]) for p in body["errors"]]
    assert (code, path) in problems, body
    detail = next(p["detail"] for p in body["errors"] if (p["code"], p["path"]) == (code, path))
    assert word in detail or word in body["message"], body
    assert (await api("GET", "workflows"))[1] == []


@pytest.mark.parametrize("kind", [{}, ["python"]], ids=["object", "list"])
async def test_a_type_that_is_not_a_string_is_unknown(api, kind):
    await test_rejected_definitions(
        api, wf("t", task("a", type=kind)), "unknown_task_type", "tasks[0].type", "allowed"
    )
    assert (await api("GET", "executions"))[1] == []


async def test_every_problem_is_reported_at_once(api):
    definition = wf("many", task("a", "ghost"), task("a"), {"name": "b", "retries": "x"})
    status, body, _ = await api("POST", "workflows", body=definition)
    assert status == 400
    codes = {p["code"] for p in body["errors"]}
    assert codes >= {"unknown_dependency", "duplicate_task_name", "type_error"}


# (id, path parts, query, status, problem code)
QUERIES: list[tuple[str, tuple[str, ...], Any, int, str]] = [
    ("limit-negative", ("executions",), {"limit": "-1"}, 400, "invalid_query"),
    ("limit-zero", ("executions",), {"limit": "0"}, 400, "out_of_range"),
    ("limit-1001", ("executions",), {"limit": "1001"}, 400, "out_of_range"),
    ("limit-1e9", ("executions",), {"limit": str(10**9)}, 400, "out_of_range"),
    ("limit-huge", ("executions",), {"limit": "9" * 40}, 400, "invalid_query"),
    ("limit-float", ("executions",), {"limit": "1.5"}, 400, "invalid_query"),
    ("limit-word", ("executions",), {"limit": "ten"}, 400, "invalid_query"),
    ("limit-repeated", ("executions",), [("limit", "1"), ("limit", "2")], 400, "invalid_query"),
    ("status-unknown", ("executions",), {"status": "exploded"}, 400, "invalid_query"),
    ("cursor-garbage", ("executions",), {"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
    ("cursor-forged", ("executions",), {"cursor": "ZTE6LTE"}, 400, "invalid_cursor"),
    ("workflow-id-empty", ("executions",), {"workflow_id": ""}, 400, "invalid_query"),
    (
        "order-by-injection",
        ("executions",),
        {"order_by": "name;DROP TABLE executions"},
        400,
        "invalid_query",
    ),
    ("unknown-param-workflows", ("workflows",), {"x": "1"}, 400, "invalid_query"),
    ("revision-word", ("workflows", "w"), {"revision": "latest"}, 400, "invalid_query"),
    ("revision-zero", ("workflows", "w"), {"revision": "0"}, 400, "out_of_range"),
    ("query-invalid-utf8", ("executions",), "status=%ff", 400, "invalid_query"),
    ("numeric-key-with-value", ("executions",), "1732579200000=1", 400, "invalid_query"),
]


@pytest.mark.parametrize(
    ("parts", "query", "status", "code"), [q[1:] for q in QUERIES], ids=[q[0] for q in QUERIES]
)
async def test_bad_queries(
    api, http_server_client, jp_base_url, jp_auth_header, parts, query, status, code
):
    from urllib.parse import urlencode

    qs = query if isinstance(query, str) else urlencode(query)
    url = jp_base_url + "/".join(parts) + "?" + qs
    resp = await http_server_client.fetch(url, headers=jp_auth_header, raise_error=False)
    body = json.loads(resp.body)
    assert resp.code == status, body
    assert body["code"] == "invalid_query"
    assert code in [p["code"] for p in body["errors"]], body


async def test_jupyterlab_cache_buster_is_ignored(http_server_client, jp_base_url, jp_auth_header):
    # URLExt in JupyterLab appends "?<timestamp>" to every GET
    resp = await http_server_client.fetch(
        jp_base_url + "executions?1732579200000", headers=jp_auth_header, raise_error=False
    )
    assert resp.code == 200, resp.body


async def test_sql_text_in_filters_is_just_data(api):
    status, body, _ = await api("GET", "executions", params={"workflow_id": "x' OR '1'='1"})
    assert (status, body) == (200, [])


@pytest.mark.parametrize("key", ["", "x" * 256, "y" * 5000, "caf\u00e9", "tab\tkey"])
async def test_bad_idempotency_keys(api, key):
    status, body, _ = await api("POST", "workflows", body=GOOD, headers={"Idempotency-Key": key})
    if key == "":  # Tornado drops an empty header value: no key, a normal submission
        assert status in (200, 400), body
        return
    assert status == 400, body
    assert body["errors"][0]["code"] == "invalid_header"


# (id, body, headers, status, code) -- POST /workflows/{id}/executions
EXEC_BODIES: list[tuple[str, Any, dict[str, str], int, str]] = [
    ("params-list", b'{"params": []}', JSON, 400, "type_error"),
    ("params-string", b'{"params": "x=1"}', JSON, 400, "type_error"),
    ("unknown-key", b'{"paramz": {}}', JSON, 400, "unknown_field"),
    ("revision-string", b'{"revision": "1"}', JSON, 400, "out_of_range"),
    ("revision-zero", b'{"revision": 0}', JSON, 400, "out_of_range"),
    ("array-body", b"[]", JSON, 400, "type_error"),
    (
        "text-plain",
        b'{"params": {}}',
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
    ),
    ("nan-param", b'{"params": {"x": NaN}}', JSON, 400, "invalid_number"),
    ("surrogate-param", b'{"params": {"x": "\\udc00"}}', JSON, 400, "invalid_string"),
]


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [b[1:] for b in EXEC_BODIES],
    ids=[b[0] for b in EXEC_BODIES],
)
async def test_bad_execution_requests(api, taskflow_app, raw, headers, status, code):
    await taskflow_app.run(taskflow_app.runner.register, GOOD)
    got, body, _ = await api("POST", "workflows", "ok", "executions", raw=raw, headers=headers)
    assert got == status, body
    assert code in [body["code"], *[p["code"] for p in body["errors"]]], body
    assert (await api("GET", "executions"))[1] == []


@pytest.mark.parametrize("action", ["cancel", "retry"])
async def test_cancel_retry_refuse_unknown_body_fields(api, action):
    execution = await api.submit(GOOD)
    await api.wait(execution["id"])
    status, body, _ = await api("POST", "executions", execution["id"], action, body={"force": True})
    assert status == 400 and body["code"] == "unknown_field"


async def test_invalid_percent_encoding_in_path(
    api, http_server_client, jp_base_url, jp_auth_header
):
    resp = await http_server_client.fetch(
        jp_base_url + "workflows/%ff%fe", headers=jp_auth_header, raise_error=False
    )
    assert resp.code == 400
    assert json.loads(resp.body)["code"] == "bad_request"


async def test_unknown_ids_are_404(api):
    for parts in [
        ("workflows", "nope"),
        ("executions", "exec_0"),
        ("executions", "exec_0", "tasks", "a", "logs"),
    ]:
        status, body, _ = await api("GET", *parts)
        assert (status, body["code"]) == (404, "not_found"), parts


async def test_unsupported_method_is_405_json(api):
    status, body, _ = await api("PUT", "workflows", body=GOOD)
    assert status == 405 and body["code"] == "method_not_allowed"
