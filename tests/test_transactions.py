"""VM-level behaviour of transactions and resilience (§8, §9): compensation order, the
pivot, 2PC decisions, circuit breakers and bulkheads."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from kailash_dsl.runtime.nodes import CircuitBreaker
from vmkit import run, write_program

SAGA_NODES = """
LOG = []
def do(name):
    LOG.append("do:" + name)
    if name.startswith("bad"):
        raise RuntimeError("cannot " + name)
    return {"name": name, "ticket": "t-" + name}
def undo(ticket):
    LOG.append("undo:" + ticket)
    return {"ok": True}
def undo_fails(ticket):
    LOG.append("undo-fail:" + ticket)
    raise RuntimeError("undo broke")
def read(name):
    LOG.append("read:" + name)
    if name.startswith("bad"):
        raise RuntimeError("read failed")
    return {"name": name}
"""

SAGA = """
@impl("NODES:do")
@effect(write, resource: "a")
@compensate(Undo)
node DoA(name: str) -> {name: str, ticket: str}

@impl("NODES:do")
@effect(write, resource: "b")
@compensate(Undo)
node DoB(name: str) -> {name: str, ticket: str}

@impl("NODES:do")
@effect(write, resource: "c")
node Pivot(name: str) -> {name: str, ticket: str}

@impl("NODES:undo")
@effect(write)
@retry(attempts: 1)
node Undo(ticket: str) -> {ok: bool}

@impl("NODES:read")
@effect(read)
@retry(attempts: 1)
node Read(name: str) -> {name: str}

workflow Saga(a: str, b: str, p: str, r: str = "ok") -> str {
  transaction {
    let x = DoA(name: a)
    let y = DoB(name: b)
    let z = Pivot(name: p)
    let q = Read(name: r)
  }
  return "${x.name} ${y.name} ${z.name} ${q.name}"
}
"""


def _log(path):
    import importlib
    name = next(p.stem for p in path.parent.glob("vmkit_nodes_*.py"))
    return importlib.import_module(name).LOG


def test_saga_compensates_completed_steps_in_reverse_order(tmp_path):
    path = write_program(tmp_path, SAGA, SAGA_NODES)
    out = run(path, {"a": "a1", "b": "b1", "p": "bad-pivot"})
    assert out.status == "failed"
    assert out.result["error"]["kind"] == "StepFailed"
    assert out.result["error"]["message"] == "cannot bad-pivot"
    assert _log(path) == ["do:a1", "do:b1", "do:bad-pivot", "undo:t-b1", "undo:t-a1"]


def test_saga_failure_after_the_pivot_compensates_nothing(tmp_path):
    path = write_program(tmp_path, SAGA, SAGA_NODES)
    out = run(path, {"a": "a1", "b": "b1", "p": "p1", "r": "bad-read"})
    assert out.status == "failed"
    assert _log(path) == ["do:a1", "do:b1", "do:p1", "read:bad-read"]


def test_saga_success_runs_no_compensation(tmp_path):
    path = write_program(tmp_path, SAGA, SAGA_NODES)
    out = run(path, {"a": "a1", "b": "b1", "p": "p1"})
    assert out.result == {"run_id": out.result["run_id"], "status": "completed",
                          "output": "a1 b1 p1 ok", "error": None}
    assert not any(x.startswith("undo") for x in _log(path))


def test_failed_compensation_reports_what_was_not_undone(tmp_path):
    src = SAGA.replace('@impl("NODES:undo")', '@impl("NODES:undo_fails")')
    path = write_program(tmp_path, src, SAGA_NODES)
    out = run(path, {"a": "a1", "b": "b1", "p": "bad"})
    err = out.result["error"]
    assert err["kind"] == "CompensationFailed"
    assert "y" in err["message"] and "x" in err["message"]


def test_compensations_are_journaled(tmp_path):
    path = write_program(tmp_path, SAGA, SAGA_NODES)
    out = run(path, {"a": "a1", "b": "b1", "p": "bad"}, run_id="s1")
    assert out.status == "failed"
    con = sqlite3.connect(tmp_path / "runs.db")
    keys = {k for (k,) in con.execute("SELECT key FROM steps WHERE run_id='s1'")}
    assert {"x", "y", "z", "x.compensate", "y.compensate"} <= keys


LEDGER = """
import json, os
from pathlib import Path
LOG = []
STATE = Path(os.environ.get("VMKIT_LEDGER", "ledger.json"))
class Ledger:
    def prepare(self, account, delta, *, ctx):
        LOG.append("prepare:" + account)
        if delta < -100:
            raise RuntimeError("insufficient funds in " + account)
        return {"ok": True}
    def commit(self, *, ctx):
        LOG.append("commit:" + ctx.step_key)
    def abort(self, *, ctx):
        LOG.append("abort:" + ctx.step_key)
"""

TWOPC = """
@impl("NODES:Ledger")
@effect(write, resource: "ledger")
@transactional(resource: "ledger")
node Move(account: str, delta: int) -> {ok: bool}

workflow T(d1: int, d2: int, d3: int) -> bool {
  transaction 2pc {
    let a = Move(account: "a", delta: d1)
    let b = Move(account: "b", delta: d2)
    let c = Move(account: "c", delta: d3)
  }
  return a.ok and b.ok and c.ok
}
"""


def test_2pc_records_the_decision_before_committing(tmp_path):
    path = write_program(tmp_path, TWOPC, LEDGER)
    out = run(path, {"d1": 1, "d2": 2, "d3": 3}, run_id="t1")
    assert out.result["output"] is True
    assert _log(path) == ["prepare:a", "prepare:b", "prepare:c", "commit:a", "commit:b",
                          "commit:c"]
    con = sqlite3.connect(tmp_path / "runs.db")
    rows = dict(con.execute("SELECT key, value FROM steps WHERE run_id='t1'"))
    assert json.loads(rows["tx.decision"]) == "commit"
    # the decision was committed to the journal no later than the first commit record
    order = [k for (k,) in con.execute(
        "SELECT key FROM steps WHERE run_id='t1' ORDER BY finished_at")]
    assert order.index("tx.decision") < order.index("a.commit")


def test_2pc_first_failed_prepare_aborts_the_prepared_and_stops(tmp_path):
    path = write_program(tmp_path, TWOPC, LEDGER)
    out = run(path, {"d1": 1, "d2": -500, "d3": 3}, run_id="t2")
    assert out.status == "failed"
    assert out.result["error"]["kind"] == "StepFailed"
    assert "insufficient funds in b" in out.result["error"]["message"]
    assert _log(path) == ["prepare:a", "prepare:b", "abort:a"]
    con = sqlite3.connect(tmp_path / "runs.db")
    rows = dict(con.execute("SELECT key, value FROM steps WHERE run_id='t2'"))
    assert json.loads(rows["tx.decision"]) == "abort"


def test_circuit_breaker_states():
    b = CircuitBreaker(failures=2, reset_ms=50)
    b.before("N")
    b.failure()
    assert b.state == "closed"
    b.failure()
    assert b.state == "open"
    with pytest.raises(Exception) as exc:
        b.before("N")
    assert getattr(exc.value, "kind", None) == "CircuitOpen"
    time.sleep(0.06)
    b.before("N")
    assert b.state == "half-open"
    b.failure()  # a failed trial call opens it again at once
    assert b.state == "open"
    time.sleep(0.06)
    b.before("N")
    b.success()
    assert b.state == "closed" and b.count == 0


BREAKER = """
CALLS = []
def flaky(n):
    CALLS.append(n)
    raise RuntimeError("down")
"""

BREAKER_PROG = """
@impl("NODES:flaky")
@effect(read)
@retry(attempts: 1)
@circuit_breaker(failures: 2, reset: 1h)
node Flaky(n: int) -> int

workflow B(n: int) -> int {
  let v = try Flaky(n: n) else Flaky(n: n + 100)
  return v
}
"""


def test_circuit_breaker_opens_after_consecutive_failures_across_runs(tmp_path):
    path = write_program(tmp_path, BREAKER_PROG, BREAKER)
    first = run(path, {"n": 1})
    assert first.result["error"]["kind"] == "StepFailed"  # primary and fallback both ran
    second = run(path, {"n": 2})
    assert second.result["error"]["kind"] == "CircuitOpen"
    import importlib
    name = next(p.stem for p in tmp_path.glob("vmkit_nodes_*.py"))
    assert importlib.import_module(name).CALLS == [1, 101]  # no call while open


BULKHEAD = """
import asyncio
NOW = 0
PEAK = 0
async def work(tag):
    global NOW, PEAK
    NOW += 1
    PEAK = max(PEAK, NOW)
    await asyncio.sleep(0.05)
    NOW -= 1
    return tag
def peak(after):
    return PEAK
"""

BULKHEAD_PROG = """
@impl("NODES:work")
@effect(read)
@bulkhead(limit: 2)
node Work(tag: str) -> str

@impl("NODES:peak")
@effect(read)
node Peak(after: list[str]) -> int

workflow W() -> {peak: int, tags: list[str]} {
  let tags = ["a", "b", "c", "d", "e"]
  @concurrency(5)
  let done = for t in tags {
    let w = Work(tag: t)
    yield w
  }
  let p = Peak(after: done)
  return {peak: p, tags: done}
}
"""


def test_bulkhead_caps_concurrent_calls_and_queues_the_rest(tmp_path):
    path = write_program(tmp_path, BULKHEAD_PROG, BULKHEAD)
    out = run(path)
    assert out.result["output"] == {"peak": 2, "tags": ["a", "b", "c", "d", "e"]}
