"""The standard library through the real runtime: `kflow run` on small programs that use
every std module, so the .kflow declarations, the implementations and the runtime's
calling convention (keyword arguments, ctx, base_dir, error kinds) are tested together.
Skips, with the reason shown, while the checker or runtime is missing."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("kailash_dsl.compiler.api") is None
    or importlib.util.find_spec("kailash_dsl.runtime.vm") is None,
    reason="the checker or the durable runtime has not landed yet",
)

PROGRAM = r'''
import std.core
import std.file
import std.http
import std.sql
import std.json as js
import std.text

## Touch every std module once.
workflow Tour(name: str, url: str) -> json {
  let now = core.Now()
  let id = core.Uuid()
  let echoed = core.Echo(value: {a: 1})
  let written = file.WriteJson(path: "out/data.json", value: {name: name, n: 3})
  let back = file.ReadJson(path: "out/data.json")
  let csv = file.WriteCsv(path: "out/rows.csv", rows: [{k: "a", v: 1}, {k: "b", v: 2}])
  let rows_back = file.ReadCsv(path: "out/rows.csv")
  sql.Execute(db: "demo.db", sql: "CREATE TABLE IF NOT EXISTS t (name TEXT)")
  let ins = sql.Execute(db: "demo.db", sql: "INSERT INTO t VALUES (?)", params: [name])
  let rows = sql.Query(db: "demo.db", sql: "SELECT name FROM t")
  let parsed = js.Parse(text: "{\"x\": [1, 2, 3]}")
  let second = js.Query(value: parsed, expression: "x[1]")
  let dumped = js.Dump(value: parsed)
  let greeting = text.Template(template: "Hi {{ who }}!", vars: {who: name})
  let m = text.Regex(pattern: "(\\w+)@", text: "ada@example.com")
  let page = http.Get(url: "${url}/hello", query: {"who": name})
  let posted = http.Post(url: "${url}/echo", body: {n: 1})
  core.Log(message: "now ${now}, id ${id}", level: "debug")
  return {
    now_len: len(now)
    id_len: len(id)
    echoed: echoed
    back: back
    written: written.size > 0
    csv: csv.count
    rows_back: rows_back
    ins: ins
    rows: rows.rows
    second: second
    dumped: dumped
    greeting: greeting
    user: m.groups
    page: page.json
    status: page.status
    idem: posted.json
  }
}

## A std.core.Fail caught by its kind.
workflow Caught() -> str {
  try {
    core.Fail(kind: "OutOfStock", message: "sku A1 is gone")
  } catch OutOfStock as e {
    return "caught ${e.kind}: ${e.message}"
  }
  return "not reached"
}

## An HTTP error status, caught by kind HttpError.
workflow NotFound(url: str) -> str {
  try {
    http.Get(url: "${url}/missing")
  } catch HttpError as e {
    return e.kind
  }
  return "not reached"
}
'''


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.startswith("/hello"):
            return self._send(200, {"path": self.path})
        return self._send(404, {"error": "nope"})

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        return self._send(200, {"key": self.headers.get("Idempotency-Key")})


@pytest.fixture(scope="module")
def url():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _run(tmp_path, workflow, data, run_id):
    prog = tmp_path / "prog" / "tour.kflow"
    prog.parent.mkdir(exist_ok=True)
    prog.write_text(PROGRAM, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "kailash_dsl", "run", str(prog), "--workflow", workflow,
         "--input", json.dumps(data), "--run-id", run_id, "--db", str(tmp_path / "runs.db"),
         "--format", "json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    try:
        return proc.returncode, json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")


def test_every_std_module_through_the_runtime(tmp_path, url):
    code, result = _run(tmp_path, "Tour", {"name": "ada", "url": url}, "tour-1")
    assert result["status"] == "completed", result
    out = result["output"]
    assert out["now_len"] == 24 and out["id_len"] == 36
    assert out["echoed"] == {"a": 1}
    assert out["back"] == {"name": "ada", "n": 3} and out["written"] is True
    assert out["csv"] == 2 and out["rows_back"] == [{"k": "a", "v": "1"}, {"k": "b", "v": "2"}]
    assert out["ins"] == {"rowcount": 1, "lastrowid": 1}
    assert out["rows"] == [{"name": "ada"}]
    assert out["second"] == 2 and out["dumped"] == '{"x":[1,2,3]}'
    assert out["greeting"] == "Hi ada!" and out["user"] == ["ada"]
    assert out["page"] == {"path": "/hello?who=ada"} and out["status"] == 200
    assert out["idem"]["key"]  # the runtime's idempotency key reached the server
    # relative paths are resolved against the .kflow file's folder, not the cwd
    assert (tmp_path / "prog" / "out" / "data.json").exists()
    assert (tmp_path / "prog" / "demo.db").exists()
    assert not (tmp_path / "out").exists()


def test_fail_kind_is_catchable(tmp_path):
    code, result = _run(tmp_path, "Caught", {}, "caught-1")
    assert result["output"] == "caught OutOfStock: sku A1 is gone"


def test_http_error_kind_is_catchable(tmp_path, url):
    code, result = _run(tmp_path, "NotFound", {"url": url}, "nf-1")
    assert result["output"] == "HttpError", result
