"""Configured limits: body size (413, before and while reading), task count, JSON depth."""

from __future__ import annotations

import json

import pytest

from .helpers import task, wf

CAP = 4096


@pytest.fixture
def taskflow_config():
    return {"max_body_bytes": CAP, "max_tasks": 5, "max_json_depth": 10}


def padded(size: int) -> bytes:
    body = json.dumps(wf("big", task("a", params={"kwargs": {"pad": ""}})))
    return body.replace('"pad": ""', '"pad": "' + "x" * (size - len(body)) + '"').encode()


async def test_body_at_the_cap_is_read(api):
    raw = padded(CAP)
    assert len(raw) == CAP
    status, body, _ = await api(
        "POST", "workflows", raw=raw, headers={"Content-Type": "application/json"}
    )
    assert status == 200, body


async def test_body_over_the_cap_by_content_length_is_413(api):
    status, body, _ = await api(
        "POST", "workflows", raw=padded(CAP + 1), headers={"Content-Type": "application/json"}
    )
    assert (status, body["code"]) == (413, "payload_too_large")
    assert str(CAP) in body["message"]
    assert (await api("GET", "workflows"))[1] == []


async def test_huge_declared_length_is_refused_before_reading(
    api, jp_http_port, jp_base_url, jp_auth_header
):
    """Content-Length of 1 GiB and no body at all: the 413 comes from the header alone."""
    import asyncio

    reader, writer = await asyncio.open_connection("127.0.0.1", jp_http_port)
    writer.write(
        (
            f"POST {jp_base_url}workflows HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: {jp_auth_header['Authorization']}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), 20)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    writer.close()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert b"application/json" in head


async def test_chunked_body_over_the_cap_is_413(
    api, http_server_client, jp_base_url, jp_auth_header
):
    chunk = b" " * 1024

    async def producer(write):
        await write(b'{"name": "x", "tasks": [{"name": "a"}]}')
        for _ in range(16):  # 16 KiB of whitespace: valid JSON, over the cap
            await write(chunk)

    resp = await http_server_client.fetch(
        jp_base_url + "workflows",
        method="POST",
        body_producer=producer,
        raise_error=False,
        headers={**jp_auth_header, "Content-Type": "application/json"},
    )
    assert resp.code == 413
    assert json.loads(resp.body)["code"] == "payload_too_large"


async def test_too_many_tasks(api):
    status, body, _ = await api(
        "POST", "workflows", body=wf("many", *[task(f"t{i}") for i in range(6)])
    )
    assert status == 400
    assert body["errors"][0]["code"] == "too_many_tasks"
    assert "6 tasks; the limit is 5" in body["errors"][0]["detail"]
    status, _, _ = await api(
        "POST", "workflows", body=wf("five", *[task(f"t{i}") for i in range(5)])
    )
    assert status == 200


async def test_configured_depth(api):
    definition = wf("deep", task("a", params={"x": [[[[[[[[]]]]]]]]}))
    status, body, _ = await api("POST", "workflows", body=definition)
    assert (status, body["code"]) == (400, "json_too_deep")
    assert "limit 10" in body["message"]
