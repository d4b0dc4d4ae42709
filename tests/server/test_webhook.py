"""The optional webhook (``TaskFlowApp.webhook_url``): a JSON POST per execution that ends
as ``webhook_events`` says, retried, never blocking the engine.

A real HTTP receiver (``http.server`` in a thread) that answers 503 to the first POST and
200 after; the real in-process server posts to it.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .helpers import task, wf


class Receiver:
    def __init__(self, fail_first: int = 1, delay: float = 0.0) -> None:
        self.posts: list[dict] = []
        self.tries = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.tries += 1
                time.sleep(delay)
                if receiver.tries <= fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.posts.append(
                    {"type": self.headers["Content-Type"], "body": json.loads(body)}
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.posts) < count:
            assert time.monotonic() < deadline, f"{len(self.posts)} posts, wanted {count}"
            time.sleep(0.05)
        return self.posts


@pytest.fixture
def receiver(taskflow_config):
    r = Receiver(fail_first=1, delay=0.5)  # slow too: the engine must not wait for it
    taskflow_config.update(webhook_url=r.url, webhook_events=["failed", "completed"])
    yield r
    r.server.shutdown()


async def test_a_failed_execution_is_posted_after_a_retry(receiver, api):
    failing = wf("hooked", task("ok", code="result = 1"), task("bad", "ok", code="1/0"))
    started = time.monotonic()
    done = await api.wait((await api.submit(failing))["id"])
    assert time.monotonic() - started < 5  # the slow receiver did not hold the run
    [post] = receiver.wait(1)
    assert receiver.tries == 2  # the 503 was retried
    assert post["type"] == "application/json"
    body = post["body"]
    assert body["event"] == "execution_failed"
    sent = body["execution"]
    assert (sent["id"], sent["workflowId"], sent["status"]) == (done["id"], "hooked", "failed")
    assert sent["tasks"] == {"completed": 1, "failed": 1}
    assert sent["failed"] == [
        {"name": "bad", "error": "ZeroDivisionError: division by zero", "reason": None}
    ]
    assert sent["trigger"] == "api"

    ok = await api.wait((await api.submit(wf("fine", task("a"))))["id"])
    posts = receiver.wait(2)
    assert posts[1]["body"]["event"] == "execution_completed"
    assert posts[1]["body"]["execution"]["id"] == ok["id"]


def test_unknown_webhook_events_are_refused():
    from traitlets import TraitError

    from pytaskflow_jupyter.server.app import TaskFlowApp

    with pytest.raises(TraitError, match=r"unknown \['done'\]"):
        TaskFlowApp(webhook_events=["failed", "done"])
