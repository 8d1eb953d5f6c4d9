"""std.http implementations against a local http.server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from kailash_dsl.stdlib import http_
from kailash_dsl.stdlib.errors import NodeError


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def _reply(self, status, body, content_type="application/json", extra=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or []):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _echo(self):
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if url.path == "/status":
            code = int(parse_qs(url.query)["code"][0])
            return self._reply(code, json.dumps({"code": code}))
        if url.path == "/slow":
            time.sleep(1.0)
            return self._reply(200, "{}")
        if url.path == "/text":
            return self._reply(200, "plain words", "text/plain", [("X-Multi", "a"), ("X-Multi", "b")])
        body = {
            "method": self.command,
            "path": url.path,
            "query": {k: v[0] for k, v in parse_qs(url.query).items()},
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": json.loads(raw) if raw else None,
        }
        return self._reply(200, json.dumps(body))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _echo


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


class Ctx:
    run_id = "r1"
    step_key = "charge"
    attempt = 1
    idempotency_key = "r1/charge"

    def __init__(self):
        self.lines = []

    def log(self, msg):
        self.lines.append(msg)


def run(coro):
    return asyncio.run(coro)


def test_get_with_query_and_headers(server):
    r = run(http_.get(f"{server}/items", headers={"X-Token": "t"}, query={"page": 2, "all": True}))
    assert r["status"] == 200
    assert r["json"]["method"] == "GET"
    assert r["json"]["query"] == {"page": "2", "all": "true"}
    assert r["json"]["headers"]["x-token"] == "t"
    assert r["headers"]["content-type"] == "application/json"
    assert json.loads(r["body"]) == r["json"]


def test_get_sends_no_idempotency_key(server):
    r = run(http_.get(f"{server}/x", ctx=Ctx()))
    assert "idempotency-key" not in r["json"]["headers"]


def test_post_json_body_and_idempotency_key(server):
    ctx = Ctx()
    r = run(http_.post(f"{server}/orders", body={"id": "o1", "qty": [1, 2]}, ctx=ctx))
    assert r["json"]["method"] == "POST"
    assert r["json"]["body"] == {"id": "o1", "qty": [1, 2]}
    assert r["json"]["headers"]["idempotency-key"] == "r1/charge"
    assert r["json"]["headers"]["content-type"] == "application/json"
    assert ctx.lines and "POST" in ctx.lines[0]


def test_post_user_idempotency_key_wins(server):
    r = run(http_.post(f"{server}/o", headers={"idempotency-key": "mine"}, ctx=Ctx()))
    assert r["json"]["headers"]["idempotency-key"] == "mine"
    assert r["json"]["body"] is None


def test_request_any_method(server):
    for method in ("put", "DELETE", "PATCH"):
        r = run(http_.request(method, f"{server}/r", body=[1]))
        assert r["json"]["method"] == method.upper()


def test_non_json_body(server):
    r = run(http_.get(f"{server}/text"))
    assert r["body"] == "plain words" and r["json"] is None
    assert r["headers"]["x-multi"] == "a, b"


def test_non_2xx_is_http_error(server):
    with pytest.raises(NodeError) as e:
        run(http_.get(f"{server}/status", query={"code": 404}))
    assert e.value.kind == "HttpError"
    assert "404" in str(e.value) and '{"code": 404}' in str(e.value)


def test_ok_statuses_accepts_listed(server):
    r = run(http_.get(f"{server}/status", query={"code": 404}, ok_statuses=[404, 409]))
    assert r["status"] == 404 and r["json"] == {"code": 404}
    with pytest.raises(NodeError):
        run(http_.post(f"{server}/status", query={"code": 500}, ok_statuses=[404]))


def test_timeout_kind(server):
    with pytest.raises(NodeError) as e:
        run(http_.get(f"{server}/slow", timeout=200))  # 200 ms, as the runtime passes it
    assert e.value.kind == "Timeout"


def test_timeout_as_literal_text(server):
    r = run(http_.get(f"{server}/x", timeout="5s"))
    assert r["status"] == 200


def test_connection_refused_is_http_error():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(NodeError) as e:
        run(http_.get(f"http://127.0.0.1:{port}/", timeout=2000))
    assert e.value.kind == "HttpError"


def test_parallel_gets_overlap(server):
    async def both():
        start = time.monotonic()
        await asyncio.gather(http_.get(f"{server}/slow"), http_.get(f"{server}/slow"))
        return time.monotonic() - start

    assert run(both()) < 1.9
