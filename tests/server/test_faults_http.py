"""Faults of issue 15 on the HTTP side, each against a real server (pytest-jupyter)."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytaskflow_jupyter.errors import InvalidInput
from pytaskflow_jupyter.server.body import depth_exceeded, parse_json, parse_strict

from .helpers import LiveServer

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
    "map_over": None,
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
                "map_over": None,
            }
        ],
    }
    await api.submit(posted)
    status, got, _ = await api("GET", "workflows", "kept")
    assert status == 200
    state = ("schedule", "scheduleText", "paused", "nextRunTime", "lastScheduledRun")
    added = ("revision", "createdAt", "updatedAt", "missedSlots", "snapshots", *state)
    assert {k: v for k, v in got.items() if k not in added} == posted
    assert [got[k] for k in state] == [None, None, False, None, None]
    assert got["snapshots"] == {} and got["missedSlots"] is None


JSON_HEADERS = {"Content-Type": "application/json"}


async def test_a_32_mb_body_of_brackets_is_refused_as_too_deep(api):
    status, body, _ = await api("POST", "workflows", raw=b"[" * 32_000_000, headers=JSON_HEADERS)
    assert (status, body["code"]) == (400, "json_too_deep"), body
    assert "limit 64" in body["message"]
    assert (await api("GET", "workflows"))[1] == []


def test_the_depth_check_stops_at_the_first_window_past_the_limit():
    # a linear scan that stops early: of 32 MB it reads about ``limit`` bytes
    for limit in (1, 64, 1000):
        seen = depth_exceeded(b"[" * 32_000_000, limit)
        assert seen is not None and seen < limit + 100
    assert depth_exceeded(b" " * 1000 + b"[" * 65, 64) is not None
    assert depth_exceeded(b"[" * 64 + b"]" * 64 + b"[" * 64, 64) is None


@pytest.mark.parametrize(
    ("raw", "deepest"),
    [
        (b'["[[[[", {"a": "]]]]"}, "\\"[["]', 2),
        (b'[{"k": "' + b"x" * 5000 + b'"}, [[[]]]]', 4),  # a string longer than a window
        (b'[["\\\\"], "\\\\\\"[" ]', 2),  # escaped backslashes, then an escaped quote
        (b'["never closed [[[[[[', 1),
    ],
)
def test_the_depth_check_skips_strings(raw, deepest):
    assert depth_exceeded(raw, deepest) is None
    assert depth_exceeded(raw, deepest - 1) is not None


def _outcome(parse: Any, raw: bytes, limit: int) -> tuple[Any, ...]:
    try:
        return ("value", repr(parse(raw, depth_limit=limit)))  # repr: 1 is not 1.0
    except InvalidInput as exc:
        return ("refused", str(exc), [(p.path, p.code, p.detail) for p in exc.problems])


_TEXT = st.text(st.sampled_from('ab:"\\[]{}e+\u00e9\u2028\U0001f600\x00\x1f '), max_size=8)
_SCALARS = (
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(10**25), 10**25) | _TEXT
)  # fmt: skip
_VALUES = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)  # fmt: skip
_NOISE = st.sampled_from(
    [b"[", b"]", b"{", b"}", b'"', b":", b",", b"\\", b"\\u003a", b"\\ud800", b"e+5", b"1e400",
     b"NaN", b"99999999999999999999", b"\xff", b"\xef\xbb\xbf", b" ", b"-", b"0"]
)  # fmt: skip


@st.composite
def _bodies(draw: Any) -> bytes:
    """JSON texts as clients write them, sometimes broken: a byte string inserted, a
    slice cut, or a member repeated (a duplicate key)."""
    value = draw(_VALUES)
    ascii_only = draw(st.booleans())
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
    raw = json.dumps(value, ensure_ascii=ascii_only, separators=separators).encode()
    change = draw(st.sampled_from(["none", "insert", "cut", "repeat"]))
    where = draw(st.integers(0, len(raw)))
    if change == "insert":
        raw = raw[:where] + draw(_NOISE) + raw[where:]
    elif change == "cut":
        raw = raw[:where] + raw[where + draw(st.integers(1, 4)) :]
    elif change == "repeat" and isinstance(value, dict) and value:
        key, item = next(iter(value.items()))
        member = json.dumps({key: item}, ensure_ascii=ascii_only)[1:-1].encode()
        raw = b"{" + member + b", " + raw[1:]
    return raw


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_bodies(), limit=st.sampled_from([1, 2, 3, 64]))
def test_orjson_s_parse_answers_as_the_strict_parse_does(raw, limit):
    """The body parser takes orjson's parse where it is the strict parse's and leaves the
    rest to the strict parse: on any body, whole or broken, they answer the same, value
    for value (an integer stays one) and refusal for refusal."""
    assert _outcome(parse_json, raw, limit) == _outcome(parse_strict, raw, limit)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"a": 1, "a": 2}', None),
        (b'{"x": {"k:": 1, "k:": 2}}', None),
        (b'{"\\u003a": 1, "\\u003a": 2}', None),
        (b"[18446744073709551616]", [18446744073709551616]),
        (b"-9223372036854775809", -9223372036854775809),
        (b'["\\ud800"]', None),
        (b"[NaN]", None),
        (b"1e400", None),
        (b"[" * 65 + b"]" * 65, None),
        (b'["\\"", ' + b"[" * 64 + b"]" * 64 + b', "\\""]', None),  # escaped quotes around
        (b'["\\\\", "[[[", [[1]], "]\\""]', ["\\", "[[[", [[1]], ']"']),
        (b'[["e+"], 1e+300]', [["e+"], 1e300]),
        (b"\xef\xbb\xbf[]", None),
    ],
)
def test_what_orjson_parses_otherwise_is_left_to_the_strict_parse(raw, value):
    """Duplicate keys (orjson keeps the last), integers beyond 64 bits (orjson makes them
    floats), nesting past the limit: the strict parse decides, as it did alone (None:
    it refuses the body)."""
    outcome = _outcome(parse_json, raw, 64)
    assert outcome == _outcome(parse_strict, raw, 64)
    assert outcome[0] == "refused" if value is None else outcome == ("value", repr(value))


async def test_a_string_of_escaped_quotes_that_never_closes_is_refused_at_once(api):
    # cutting strings out tried every escaped quote again as an opening quote: quadratic
    # (80 KB took 18 s of CPU; this one would outlast the test's timeout)
    raw = b'{"name": "' + b'\\"' * 400_000
    status, body, _ = await api("POST", "workflows", raw=raw, headers=JSON_HEADERS)
    assert (status, body["code"]) == (400, "invalid_json"), body


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("live431"))
    yield server
    server.stop()


def raw_get(live: LiveServer, target: str, headers: dict[str, str]) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        conn.request("GET", target, headers={"Authorization": f"token {live.token}", **headers})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")
    finally:
        conn.close()


@pytest.mark.parametrize("where", ["header", "request_line"])
def test_a_request_head_over_64_kib_gets_431_not_a_dropped_connection(live, where):
    # tornado closes the connection without a word past its max_header_size (64 KiB)
    big = "a" * (70 * 1024)
    if where == "header":
        status, body = raw_get(live, "/workflows", {"X-Big": big})
    else:
        status, body = raw_get(live, f"/workflows?pad={big}", {})
    assert status == 431, body
    assert body["code"] == "headers_too_large" and "65536" in body["message"]


def test_a_request_head_under_64_kib_is_served(live):
    status, body = raw_get(live, "/workflows", {"X-Big": "a" * (60 * 1024)})
    assert status == 200 and body == []


# -- item 12: the small ones ------------------------------------------------------------------
async def test_the_logs_route_finds_a_task_posted_with_a_decomposed_name(api):
    """``café`` posted in NFD (``cafe`` + U+0301, as macOS spells file names) is kept in
    NFC; the logs route under the name as posted finds it."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", "café")
    assert nfd != "café"
    execution = await api.submit(
        {"name": "nfd", "tasks": [{"name": nfd, "params": {"code": "print('hi')"}}]}
    )
    await api.wait(execution["id"])
    for name in (nfd, "café"):
        status, body, _ = await api("GET", "executions", execution["id"], "tasks", name, "logs")
        assert status == 200, body
        assert body["attempts"][0]["stdout"] == "hi\n"


async def test_two_names_deriving_one_id_are_refused_unless_the_id_is_given(api):
    first = await api.submit({"name": "Café Report", "tasks": [{"name": "a"}]})
    assert first["workflowId"] == "cafe_report"
    status, body, _ = await api(
        "POST", "workflows", body={"name": "cafe-report", "tasks": [{"name": "a"}]}
    )
    assert status == 409 and body["code"] == "id_collision", body
    assert "Café Report" in body["message"]
    status, body, _ = await api("GET", "workflows", "cafe_report")
    assert body["name"] == "Café Report" and body["revision"] == 1  # nothing written
    # the same name again is a new execution of the same workflow; an explicit id decides
    again = await api.submit({"name": "Café Report", "tasks": [{"name": "a"}, {"name": "b"}]})
    assert again["workflowId"] == "cafe_report" and again["revision"] == 2
    mine = await api.submit({"id": "cafe_report", "name": "cafe-report", "tasks": [{"name": "a"}]})
    assert mine["revision"] == 3
    other = await api.submit(
        {"id": "cafe_report_2", "name": "cafe-report", "tasks": [{"name": "a"}]}
    )
    assert other["workflowId"] == "cafe_report_2"


async def test_a_timed_out_attempt_has_a_duration(api):
    execution = await api.submit(
        {
            "name": "slow",
            "tasks": [
                {"name": "a", "timeout": 0.3, "params": {"code": "import time; time.sleep(5)"}}
            ],
        }
    )
    done = await api.wait(execution["id"])
    (a,) = done["tasks"]
    assert a["status"] == "failed" and a["reason"] == "timeout"
    assert a["duration"] is not None and a["duration"] >= 0.3
    assert a["startTime"] and a["endTime"] and a["history"][0]["duration"] == a["duration"]
