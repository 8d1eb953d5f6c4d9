"""`kflow serve`: the REST API of the OpenAPI document, events, auth, roles, rate limits,
metrics and restart-resume, against a real server on a free loopback port.

One server (``shop``) is shared by this module, test_mcp_http.py and
test_serve_schemathesis.py (see :func:`shop_server`). Keys: ``admin`` (role ``*``),
``ops`` (role ``ops``), ``viewer`` (no role), ``limited`` and ``limited2`` (4 requests a
minute each).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import httpx
import pytest

from kailash_dsl.serve.auth import hash_key
from kailash_dsl.serve.testing import ServeProcess, wait_until, write_files

SHOP = '''\
## Fixture for the server tests: pure workflows, a role, a wait, a timer, a failure.
module serve.shop

## A customer.
type Customer {
  id: str
  name: str
}

## A manager's answer.
type Decision {
  approved: bool
  by: str
}

## Sum of the squares below n (at most 1000 of them), and a greeting.
workflow Squares(n: int, name: str = "world") -> {total: int, greeting: str} {
  let m = if n > 1000 then 1000 else n
  let total = sum([x * x for x in range(m)])
  return {total: total, greeting: "hello ${name}"}
}

## Count the words of a text.
workflow CountWords(text: str) -> int {
  return len(split(text, " "))
}

## Look a customer up.
@api(path: "/customers/{id}", method: "GET")
@mcp(name: "get_customer")
workflow GetCustomer(id: str, verbose: bool = false) -> Customer? {
  if id == "none" {
    return null
  }
  let name = if verbose then "Customer number ${id}" else "Customer ${id}"
  return {id: id, name: name}
}

## Put stock back on the shelf (operations staff only).
@api(roles: ["ops"])
workflow Restock(sku: str, qty: int) -> {sku: str, qty: int} {
  return {sku: sku, qty: qty}
}

## Ask for approval and wait for it.
workflow Approve(amount: float) -> {approved: bool, by: str} {
  let d: Decision? = wait "approval" timeout 1h
  if d == null {
    return {approved: false, by: "nobody"}
  }
  return {approved: d?.approved ?? false, by: d?.by ?? "?"}
}

## Wait a little, durably.
workflow Nap(label: str) -> str {
  sleep 1500ms
  return "rested ${label}"
}

## Always fails.
workflow Broken(reason: str) -> int {
  fail "broken: ${reason}"
}
'''

KEYS = {"admin": ["*"], "ops": ["ops"], "viewer": [], "limited": [], "limited2": []}
LIMITED = {"limited": "4/m", "limited2": "4/m"}

_CACHE: dict = {}


def key_of(name: str) -> str:
    return f"kf_test_{name}_0123456789abcdefghijklmnop"


def auth(name: str) -> dict:
    return {"Authorization": f"Bearer {key_of(name)}"}


@pytest.fixture(scope="session")
def shop_server(tmp_path_factory, request):
    """The shared server (started once per session, whichever module asks first)."""
    if "shop" not in _CACHE:
        folder = write_files(tmp_path_factory.mktemp("shop"), {"shop.kflow": SHOP})
        keys = {"keys": [{"name": n, "hash": hash_key(key_of(n)), "roles": r,
                          **({"rate_limit": LIMITED[n]} if n in LIMITED else {})}
                         for n, r in KEYS.items()]}
        (folder / "keys.json").write_text(json.dumps(keys))
        srv = ServeProcess.start(["shop.kflow"], db=folder / "runs.db", cwd=folder,
                                 args=["--api-keys", "keys.json", "--block-for", "300ms"])
        srv.folder = folder
        _CACHE["shop"] = srv
        request.addfinalizer(srv.stop)
    return _CACHE["shop"]


@pytest.fixture
def api(shop_server):
    with httpx.Client(base_url=shop_server.url, headers=auth("admin"), timeout=20) as c:
        yield c


def problem_of(r: httpx.Response) -> dict:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    body = r.json()
    assert body["status"] == r.status_code and body["title"] and body["detail"]
    return body


# ----------------------------------------------------------------------------- documents


def test_openapi_is_the_emitted_document(api, shop_server):
    from kailash_dsl.emit import emit_text

    emitted = json.loads(emit_text("openapi", [str(shop_server.folder / "shop.kflow")]))
    served = api.get("/openapi.json").json()
    assert list(served["paths"]) == list(emitted["paths"])
    for path, item in emitted["paths"].items():
        assert list(served["paths"][path]) == list(item)
        for method, op in item.items():
            got = served["paths"][path][method]
            for k in op:
                if k != "responses":
                    assert got[k] == op[k], (path, method, k)
            for code, resp in op["responses"].items():
                if (path, code) == ("/runs/{run_id}/events", "200"):
                    continue  # see below
                assert got["responses"][code] == resp
            # what the running server adds: auth answers (and 429, 409 on signals)
            assert set(got["responses"]) - set(op["responses"]) <= {"401", "403", "409",
                                                                     "429"}
    for name, schema in emitted["components"]["schemas"].items():
        assert served["components"]["schemas"][name] == schema
    assert "cancelled" in served["components"]["schemas"]["RunStatus"]["enum"]
    sse = served["paths"]["/runs/{run_id}/events"]["get"]["responses"]["200"]["content"][
        "text/event-stream"]
    assert "itemSchema" in sse or sse["schema"]["properties"]["data"]["contentMediaType"] \
        == "application/json"
    assert served["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_docs_health_and_open_paths(shop_server):
    with httpx.Client(base_url=shop_server.url, timeout=10) as c:  # no key: still open
        docs = c.get("/docs")
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
        assert "/customers/{id}" in docs.text and "Restock" in docs.text
        health = c.get("/healthz").json()
        assert health["status"] == "ok" and "serve.shop.Squares" in health["workflows"]
        assert c.get("/openapi.json").status_code == 200


# ------------------------------------------------------------------------------- running


def test_run_completes_and_is_recorded(api):
    r = api.post("/workflows/Squares", json={"n": 4, "name": "ann"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed" and body["error"] is None
    assert body["output"] == {"total": 14, "greeting": "hello ann"}
    run = api.get(f"/runs/{body['run_id']}").json()
    assert run == {"run_id": body["run_id"], "workflow": "serve.shop.Squares",
                   "status": "completed", "output": body["output"], "error": None}
    assert api.post("/workflows/CountWords", json={"text": "a b c"}).json()["output"] == 3


def test_path_and_query_parameters(api):
    r = api.get("/customers/c7", params={"verbose": "true"})
    assert r.status_code == 200
    assert r.json()["output"] == {"id": "c7", "name": "Customer number c7"}
    assert api.get("/customers/c8").json()["output"] == {"id": "c8", "name": "Customer c8"}
    assert api.get("/customers/none").json()["output"] is None


def test_failed_run_is_200_with_its_error(api):
    r = api.post("/workflows/Broken", json={"reason": "test"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "failed" and body["output"] is None
    assert "broken: test" in body["error"]["message"]


@pytest.mark.parametrize("body, field, words", [
    ({"n": "four"}, "n", "expected int"),
    ({"n": 1, "nam": "x"}, "nam", "did you mean `name`"),
    ({}, "n", "missing"),
    ([1, 2], "", "JSON object"),
])
def test_bad_input_is_422_naming_the_field(api, body, field, words):
    r = api.post("/workflows/Squares", json=body)
    assert r.status_code == 422
    p = problem_of(r)
    assert words in p["detail"]
    assert p["errors"][0]["field"] == field
    assert p["instance"] == "/workflows/Squares"


def test_unparsable_body_and_bad_query_are_422(api):
    r = api.post("/workflows/Squares", content=b"{nope",
                 headers={"content-type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in problem_of(r)["detail"]
    r = api.get("/customers/c1", params={"verbose": "maybe"})
    assert r.status_code == 422 and problem_of(r)["errors"][0]["field"] == "verbose"


def test_unknown_routes_runs_and_methods(api):
    r = api.post("/workflows/Nope", json={})
    assert r.status_code == 404 and "/workflows/Squares" in problem_of(r)["detail"]
    assert api.get("/runs/no-such-run").status_code == 404
    assert api.post("/runs/no-such-run/signals/x", json={}).status_code == 404
    assert api.get("/runs/no-such-run/events").status_code == 404
    r = api.get("/workflows/Squares")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    problem_of(r)


def test_run_id_header_makes_a_start_idempotent(api):
    rid = f"order-{time.time_ns()}"
    first = api.post("/workflows/Squares", content=b'{ "n" :\n 3 }',
                     headers={"Kflow-Run-Id": rid, "Content-Type": "application/json"})
    again = api.post("/workflows/Squares", json={"n": 3}, headers={"Kflow-Run-Id": rid})
    assert first.json() == again.json() and first.json()["run_id"] == rid
    other = api.post("/workflows/Squares", json={"n": 4}, headers={"Kflow-Run-Id": rid})
    assert other.status_code == 409


def test_the_journal_holds_the_input_as_sent(api, shop_server):
    """The body is journaled as the run's input (defaults are not written into it), and
    reads back as the same value whatever its formatting."""
    body = '{"n": 2,\n "name": "caf\u00e9 \\"x\\""}'
    r = api.post("/workflows/Squares", content=body.encode(),
                 headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["output"]["greeting"] == 'hello café "x"'
    with sqlite3.connect(shop_server.folder / "runs.db") as con:
        (stored,) = con.execute("SELECT input FROM runs WHERE run_id=?",
                                (r.json()["run_id"],)).fetchone()
    assert json.loads(stored) == {"n": 2, "name": 'café "x"'}
    r = api.post("/workflows/Squares", json={"n": 1})
    with sqlite3.connect(shop_server.folder / "runs.db") as con:
        (stored,) = con.execute("SELECT input FROM runs WHERE run_id=?",
                                (r.json()["run_id"],)).fetchone()
    assert json.loads(stored) == {"n": 1}


# ----------------------------------------------------------------------- waits and events


def _sse_events(url: str, headers: dict, out: list, timeout: float = 15) -> None:
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        event = {}
        for line in r.iter_lines():
            if line.startswith("event:"):
                event["event"] = line[6:].strip()
            elif line.startswith("data:"):
                event["data"] = json.loads(line[5:].strip())
            elif line.startswith("id:"):
                event["id"] = line[3:].strip()
            elif line == "" and event:
                out.append(event)
                if event.get("event") == "end":
                    return
                event = {}


def test_wait_signal_and_sse(api, shop_server):
    r = api.post("/workflows/Approve", json={"amount": 12.5})
    assert r.status_code == 202, r.text
    body = r.json()
    rid = body["run_id"]
    assert body["status"] == "waiting" and r.headers["location"] == f"/runs/{rid}"
    assert "approval" in body["waiting_for"]
    assert api.get(f"/runs/{rid}").json()["status"] == "waiting"

    events: list = []
    t = threading.Thread(target=_sse_events, args=(f"{shop_server.url}/runs/{rid}/events",
                                                   auth("admin"), events))
    t.start()
    # a payload that does not match the wait's type, and a signal nobody waits for
    bad = api.post(f"/runs/{rid}/signals/approval", json={"approved": "yes", "by": "x"})
    assert bad.status_code == 422
    assert problem_of(bad)["errors"][0]["field"] == "data.approved"
    nope = api.post(f"/runs/{rid}/signals/nope", json={})
    assert nope.status_code == 404 and "waits for: approval" in problem_of(nope)["detail"]
    ok = api.post(f"/runs/{rid}/signals/approval", json={"approved": True, "by": "maria"})
    assert ok.status_code == 202 and ok.json()["run_id"] == rid
    t.join(15)
    assert not t.is_alive()
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and "waiting" in kinds and "signalled" in kinds
    assert kinds[-1] == "end"
    assert events[-1]["data"]["output"] == {"approved": True, "by": "maria"}
    assert [int(e["id"]) for e in events if "id" in e] == \
        sorted(int(e["id"]) for e in events if "id" in e)
    done = api.get(f"/runs/{rid}").json()
    assert done["status"] == "completed" and done["output"]["by"] == "maria"
    again = api.post(f"/runs/{rid}/signals/approval", json={"approved": True, "by": "x"})
    assert again.status_code == 409 and "completed" in problem_of(again)["detail"]
    # a finished run's stream replays everything, resumable with Last-Event-ID
    replay: list = []
    _sse_events(f"{shop_server.url}/runs/{rid}/events", {**auth("admin"),
                                                         "Last-Event-ID": "2"}, replay)
    assert replay[0]["id"] == "3" and replay[-1]["event"] == "end"


def test_websocket_follows_and_signals(api, shop_server):
    from websockets.sync.client import connect

    rid = api.post("/workflows/Approve", json={"amount": 99.0}).json()["run_id"]
    ws_url = shop_server.url.replace("http://", "ws://") + f"/runs/{rid}/ws"
    with connect(ws_url, additional_headers=auth("admin"), open_timeout=10) as ws:
        seen = []
        first = json.loads(ws.recv(timeout=10))
        assert first["type"] == "event" and first["event"]["type"] == "started"
        assert first["event"]["seq"] == 1
        ws.send(json.dumps({"type": "signal", "name": "approval",
                            "data": {"approved": "no"}}))
        ws.send(json.dumps({"type": "signal", "name": "approval",
                            "data": {"approved": False, "by": "ops"}}))
        while True:
            msg = json.loads(ws.recv(timeout=10))
            seen.append(msg)
            if msg["type"] == "end":
                break
        errors = [m for m in seen if m["type"] == "error"]
        assert errors and errors[0]["status"] == 422
        assert any(m["type"] == "signal.accepted" for m in seen)
        assert seen[-1]["run"]["output"] == {"approved": False, "by": "ops"}
    # unknown run; missing key (the handshake is refused with 401)
    with connect(shop_server.url.replace("http://", "ws://") + "/runs/nope/ws",
                 additional_headers=auth("admin")) as ws:
        assert json.loads(ws.recv(timeout=10))["status"] == 404
    from websockets.exceptions import InvalidStatus
    with pytest.raises(InvalidStatus) as e:
        connect(ws_url, open_timeout=10)
    assert e.value.response.status_code == 401


def test_timer_resumes_on_the_server(api):
    r = api.post("/workflows/Nap", json={"label": "cat"})
    assert r.status_code == 202 and r.json()["status"] == "waiting"
    rid = r.json()["run_id"]
    done = wait_until(lambda: (x := api.get(f"/runs/{rid}").json())["status"] == "completed"
                      and x, timeout=10)
    assert done and done["output"] == "rested cat"


# --------------------------------------------------------------- auth, roles, rate limits


def test_api_keys(shop_server):
    url = shop_server.url + "/workflows/Squares"
    r = httpx.post(url, json={"n": 1})
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert "API key" in problem_of(r)["detail"]
    assert httpx.post(url, json={"n": 1}, headers={"Authorization": "Bearer kf_wrong"}
                      ).status_code == 401
    assert httpx.post(url, json={"n": 1}, headers={"X-API-Key": key_of("viewer")}
                      ).status_code == 200
    assert httpx.get(shop_server.url + "/metrics").status_code == 401


def test_roles(shop_server):
    url = shop_server.url + "/workflows/Restock"
    body = {"sku": "A1", "qty": 2}
    r = httpx.post(url, json=body, headers=auth("viewer"))
    assert r.status_code == 403 and "ops" in problem_of(r)["detail"]
    ok = httpx.post(url, json=body, headers=auth("ops"))
    assert ok.status_code == 200 and ok.json()["output"] == body
    assert httpx.post(url, json=body, headers=auth("admin")).status_code == 200
    rid = ok.json()["run_id"]
    assert httpx.get(f"{shop_server.url}/runs/{rid}", headers=auth("viewer")
                     ).status_code == 403
    assert httpx.get(f"{shop_server.url}/runs/{rid}", headers=auth("ops")).status_code == 200


def _mcp_post(url: str, headers: dict) -> httpx.Response:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    return httpx.post(url + "/mcp", json=body, headers={
        **headers, "Accept": "application/json, text/event-stream"})


def test_rate_limit_is_shared_by_rest_and_mcp(shop_server):
    url = shop_server.url
    # REST spends `limited`'s four tokens; MCP is then refused too
    for _ in range(4):
        assert httpx.post(url + "/workflows/Squares", json={"n": 1},
                          headers=auth("limited")).status_code == 200
    r = _mcp_post(url, auth("limited"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert "rate limit" in problem_of(r)["detail"]
    # and the other way round
    for _ in range(4):
        assert _mcp_post(url, auth("limited2")).status_code == 200
    r = httpx.post(url + "/workflows/Squares", json={"n": 1}, headers=auth("limited2"))
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # other keys are not affected
    assert httpx.post(url + "/workflows/Squares", json={"n": 1},
                      headers=auth("viewer")).status_code == 200


def test_metrics(api):
    api.post("/workflows/Squares", json={"n": 2})
    text = api.get("/metrics").text
    assert 'kflow_runs{status="completed"}' in text
    assert "kflow_journal_flush_duration_seconds_bucket" in text
    assert "kflow_step_duration_seconds_count" in text
    assert 'kflow_http_requests_total{route="/workflows/Squares",method="POST",status="200"}' \
        in text
    assert 'route="/runs/{run_id}"' in text
    assert "# TYPE kflow_http_request_duration_seconds histogram" in text


# ------------------------------------------------------------------------ restart-resume

PIPE = '''\
## A write, then a slow write: killed in the middle, resumed by the next server.
module serve.pipe

## Append a line to the log.
@impl("pipe_nodes:mark")
@effect(write, resource: "log")
node Mark(tag: str) -> str

## Take a while (forever while PIPE_HANG is set).
@impl("pipe_nodes:slow")
@effect(write, resource: "work")
node Slow(tag: str) -> str

## Mark, then work.
workflow Pipeline(tag: str) -> {mark: str, slow: str} {
  let m = Mark(tag: tag)
  let s = Slow(tag: m)
  return {mark: m, slow: s}
}
'''

PIPE_NODES = '''\
import os, time

def _log(line):
    with open(os.environ["PIPE_LOG"], "a") as f:
        f.write(line + "\\n")

def mark(tag):
    _log("mark:" + tag)
    return "marked " + tag

def slow(tag):
    _log("slow-start:" + tag)
    if os.environ.get("PIPE_HANG"):
        time.sleep(60)
    return "done " + tag
'''


def test_restart_resumes_a_run_killed_mid_step(tmp_path):
    folder = write_files(tmp_path, {"pipe.kflow": PIPE, "pipe_nodes.py": PIPE_NODES})
    log = tmp_path / "pipe.log"
    db = tmp_path / "runs.db"
    env = {"PIPE_LOG": str(log)}
    first = ServeProcess.start(["pipe.kflow"], db=db, cwd=folder,
                               env={**env, "PIPE_HANG": "1"})
    try:
        def post() -> None:
            try:
                httpx.post(first.url + "/workflows/Pipeline", json={"tag": "x"},
                           headers={"Kflow-Run-Id": "pipe-1"}, timeout=30)
            except httpx.HTTPError:
                pass  # the server dies under it

        t = threading.Thread(target=post, daemon=True)
        t.start()
        assert wait_until(lambda: log.exists() and "slow-start:" in log.read_text())
        first.kill()
    finally:
        first.kill()
    second = ServeProcess.start(["pipe.kflow"], db=db, cwd=folder, env=env)
    try:
        run = wait_until(lambda: (x := httpx.get(second.url + "/runs/pipe-1").json())
                         ["status"] == "completed" and x, timeout=15)
        assert run, second.log
        assert run["output"] == {"mark": "marked x", "slow": "done marked x"}
        lines = log.read_text().splitlines()
        assert lines.count("mark:x") == 1  # journaled before Slow started: not run again
        assert lines.count("slow-start:marked x") == 2  # was running: runs again
    finally:
        assert second.stop() in (0, -15)  # graceful shutdown on SIGTERM


# ------------------------------------------------------------------- lifecycle and CLI

JOB = '''\
## A job that takes a while.
module serve.job

## Sleep in a worker thread.
@impl("job_nodes:work")
@effect(write, resource: "w")
node Work(ms: int) -> str

## Do some work.
workflow Job(ms: int) -> str {
  let r = Work(ms: ms)
  return r
}
'''

JOB_NODES = '''\
import time

def work(ms):
    time.sleep(ms / 1000)
    return "worked %d" % ms
'''


def test_graceful_shutdown_finishes_the_runs_in_flight(tmp_path):
    import signal

    folder = write_files(tmp_path, {"job.kflow": JOB, "job_nodes.py": JOB_NODES})
    srv = ServeProcess.start(["job.kflow"], db=tmp_path / "runs.db", cwd=folder,
                             args=["--block-for", "10s"])
    result: dict = {}

    def post() -> None:
        result["r"] = httpx.post(srv.url + "/workflows/Job", json={"ms": 1200}, timeout=30)

    t = threading.Thread(target=post)
    t.start()
    time.sleep(0.4)
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    with pytest.raises(httpx.ConnectError):  # no longer accepting
        httpx.get(srv.url + "/healthz", timeout=2)
    t.join(20)
    assert result["r"].status_code == 200
    assert result["r"].json()["output"] == "worked 1200"
    assert srv.proc.wait(20) == 0
    assert "stopped" in srv.log


def test_cli_errors_and_new_key(tmp_path):
    import subprocess
    import sys

    def kflow(*args):
        return subprocess.run([sys.executable, "-m", "kailash_dsl", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    r = kflow("serve", "missing.kflow", "--port", "0")
    assert r.returncode == 2 and "no such file" in r.stderr
    (tmp_path / "bad.kflow").write_text("module m\nworkflow W() -> int { return \"x\" }\n")
    r = kflow("serve", "bad.kflow", "--port", "0")
    assert r.returncode == 2 and "error" in r.stderr
    write_files(tmp_path, {"shop.kflow": SHOP})
    r = kflow("serve", "shop.kflow", "--api-keys", "nokeys.json", "--port", "0")
    assert r.returncode == 2 and "--new-key" in r.stderr
    r = kflow("serve", "shop.kflow", "--rate-limit", "fast", "--port", "0")
    assert r.returncode == 2 and "20/s" in r.stderr
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = kflow("serve", "shop.kflow", "--port", str(busy.getsockname()[1]))
    assert r.returncode == 2 and "cannot listen" in r.stderr
    r = kflow("serve", "--new-key", "bot", "--role", "ops", "--api-keys", "keys.json")
    assert r.returncode == 0
    key = r.stdout.strip()
    assert key.startswith("kf_") and len(key) > 40
    stored = json.loads((tmp_path / "keys.json").read_text())["keys"]
    assert stored == [{"name": "bot", "hash": hash_key(key), "roles": ["ops"]}]
    assert key not in (tmp_path / "keys.json").read_text()
    r = kflow("serve", "--new-key", "bot", "--api-keys", "keys.json")
    assert r.returncode == 2 and "already exists" in r.stderr


NAPS = '''\
module serve.naps

## A write that takes a while.
@impl("nap_nodes:nap")
@effect(write, resource: "naps")
node Nap(ms: int) -> int

## Many naps, one after another.
workflow Naps(n: int) -> int {
  let naps = for i in range(n) {
    let z = Nap(ms: 100)
    yield z
  }
  return sum(naps)
}
'''

NAP_NODES = '''\
import os, time
from pathlib import Path

def nap(ms):
    time.sleep(ms / 1000)
    with open(Path(__file__).with_name("naps.log"), "a") as f:
        f.write("nap\\n")
    return ms
'''


def test_kflow_cancel_reaches_a_run_the_server_drives(tmp_path):
    """`kflow cancel` from the command line stops a run a server is driving: the request
    travels through the shared journal and the run ends `cancelled` at a step boundary."""
    import subprocess
    import sys

    folder = write_files(tmp_path, {"naps.kflow": NAPS, "nap_nodes.py": NAP_NODES})
    srv = ServeProcess.start(["naps.kflow"], db=folder / "runs.db", cwd=folder)
    try:
        answer: dict = {}

        def post() -> None:
            with httpx.Client(base_url=srv.url, timeout=60) as c:
                answer["r"] = c.post("/workflows/Naps", json={"n": 100},
                                     headers={"Kflow-Run-Id": "naps-1"})

        t = threading.Thread(target=post)
        t.start()
        log = folder / "naps.log"
        assert wait_until(lambda: log.exists() and len(log.read_text().split()) >= 2, 20)
        res = subprocess.run([sys.executable, "-m", "kailash_dsl", "cancel", "naps-1",
                              "--db", str(folder / "runs.db"), "--format", "json"],
                             cwd=folder, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["status"] == "cancelled"
        t.join(30)
        body = answer["r"].json()
        assert body["status"] == "cancelled" and body["error"]["kind"] == "Cancelled"
        naps = len(log.read_text().split())
        assert naps < 100
        time.sleep(0.4)
        assert len(log.read_text().split()) == naps  # nothing ran after it stopped
    finally:
        srv.stop()
