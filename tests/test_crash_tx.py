"""Crash tests for transactions (§7, §8): SIGKILL at random moments, 20 times in a row,
while sagas compensate and 2PC transactions commit; after resuming to the end, nothing is
half-done and no step whose outcome was recorded ran again."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

KILLS = 20

NODES = r'''
import json, os, time
from pathlib import Path

STATE = Path(os.environ["CRASH_STATE"])

def _log(line):
    with open(STATE / "invocations.log", "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())

def _apply(kind, key, payload):
    """An idempotent effect store, as a real service keyed by idempotency key is."""
    path = STATE / "effects.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.setdefault(key, {"kind": kind, "payload": payload})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)

def charge(order, *, ctx):
    _log(f"start {ctx.step_key}")
    time.sleep(0.03)
    _apply("charge", ctx.idempotency_key, order)
    return {"charge_id": f"ch-{order}", "order": order}

def refund(charge_id, *, ctx):
    _log(f"start {ctx.step_key}")
    time.sleep(0.03)
    _apply("refund", ctx.idempotency_key, charge_id)
    return {"ok": True}

def reserve(order, *, ctx):
    _log(f"start {ctx.step_key}")
    time.sleep(0.03)
    _apply("reserve", ctx.idempotency_key, order)
    return {"reservation": f"rs-{order}"}

def release(reservation, *, ctx):
    _log(f"start {ctx.step_key}")
    time.sleep(0.03)
    _apply("release", ctx.idempotency_key, reservation)
    return {"ok": True}

def ship(order, *, ctx):
    _log(f"start {ctx.step_key}")
    time.sleep(0.03)
    if order % 2 == 1:
        raise RuntimeError(f"cannot ship {order}")
    _apply("ship", ctx.idempotency_key, order)
    return {"tracking": f"tr-{order}"}

class Ledger:
    def _load(self):
        p = STATE / "ledger.json"
        return json.loads(p.read_text()) if p.exists() else {"balances": {}, "pending": {}}
    def _save(self, data):
        p = STATE / "ledger.json"
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, p)
    def prepare(self, account, delta, *, ctx):
        _log(f"start {ctx.step_key}")
        time.sleep(0.02)
        data = self._load()
        data["pending"][ctx.idempotency_key] = {"account": account, "delta": delta}
        self._save(data)
        return {"ok": True}
    def commit(self, *, ctx):
        time.sleep(0.02)
        data = self._load()
        entry = data["pending"].pop(ctx.idempotency_key, None)
        if entry is not None:
            b = data["balances"]
            b[entry["account"]] = b.get(entry["account"], 100) + entry["delta"]
        self._save(data)
    def abort(self, *, ctx):
        data = self._load()
        data["pending"].pop(ctx.idempotency_key, None)
        self._save(data)

def balances(after):
    data = Ledger()._load()
    return {"balances": data["balances"], "pending": len(data["pending"])}
'''

PROGRAM = r'''
@impl("crash_nodes:charge")
@effect(write, resource: "payments")
@compensate(Refund)
node Charge(order: int) -> {charge_id: str, order: int}

@impl("crash_nodes:refund")
@effect(write, resource: "payments")
node Refund(charge_id: str) -> {ok: bool}

@impl("crash_nodes:reserve")
@effect(write, resource: "stock")
@compensate(Release)
node Reserve(order: int) -> {reservation: str}

@impl("crash_nodes:release")
@effect(write, resource: "stock")
node Release(reservation: str) -> {ok: bool}

@impl("crash_nodes:ship")
@effect(write, resource: "shipping")
node Ship(order: int) -> {tracking: str}

@impl("crash_nodes:Ledger")
@effect(write, resource: "ledger")
@transactional(resource: "ledger")
node Move(account: str, delta: int) -> {ok: bool}

@impl("crash_nodes:balances")
@effect(read, resource: "ledger")
node Balances(after: list[str]) -> {balances: map[int], pending: int}

workflow Orders(n: int) -> list[str] {
  let results = for i in range(n) {
    try {
      transaction {
        let c = Charge(order: i)
        let r = Reserve(order: i)
        let s = Ship(order: i)
      }
      yield "shipped ${i}"
    } catch StepFailed {
      yield "undone ${i}"
    }
  }
  return results
}

workflow Transfers(n: int) -> {balances: map[int], pending: int} {
  let done = for i in range(n) {
    transaction 2pc {
      let out = Move(account: "a", delta: -10)
      let into = Move(account: "b", delta: 10)
    }
    yield "t${i}"
  }
  let b = Balances(after: done)
  return b
}
'''


def _kflow(args, env, cwd):
    return subprocess.Popen([sys.executable, "-m", "kailash_dsl", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _drive_run(tmp_path: Path, run_id: str, workflow: str, data: dict, rng: random.Random,
               kill_budget: int) -> dict:
    """Run one workflow to its end, SIGKILLing it at random moments (up to kill_budget)."""
    state = tmp_path / f"state-{run_id}"
    state.mkdir()
    env = dict(os.environ, CRASH_STATE=str(state), KFLOW_CACHE_DIR=str(tmp_path / "cache"))
    db = str(tmp_path / "runs.db")
    args = ["run", "prog.kflow", "-w", workflow, "--input", json.dumps(data), "--run-id",
            run_id, "--db", db, "--format", "json"]
    # `kflow run --run-id` of an unfinished run resumes it, so the same command also
    # recovers from a kill that landed before the run was even created
    kills = 0
    result = None
    for _attempt in range(200):
        proc = _kflow(args, env, tmp_path)
        if kills < kill_budget:
            try:
                out, err = proc.communicate(timeout=rng.uniform(0.2, 0.7))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.communicate()
                kills += 1
                continue
        else:
            out, err = proc.communicate(timeout=120)
        assert "Traceback" not in err, err
        if out.strip():
            result = json.loads(out)
            if result["status"] in ("completed", "failed"):
                break
        else:
            pytest.fail(f"kflow printed nothing and was not killed: {err[-500:]}")
    # §7: a step whose outcome was recorded never runs again. A second invocation of a
    # step is only allowed when the process died before any later step started (its
    # outcome could not have been recorded: it is flushed before the next write starts).
    con = sqlite3.connect(db)
    recorded = {k for (k,) in con.execute("SELECT key FROM steps WHERE run_id=?", (run_id,))}
    con.close()
    log = state / "invocations.log"
    starts = [ln.split(" ", 1)[1] for ln in log.read_text().splitlines()] if log.exists() \
        else []
    for i, key in enumerate(starts):
        later = starts[i + 1:]
        if key in later:
            between = later[:later.index(key)]
            assert not between, (f"{run_id}: step {key} ran again after {between} had "
                                 "started (its outcome was already recorded)")
    return {"result": result, "recorded": recorded, "state": state, "kills": kills}


def _drive_with_kills(tmp_path: Path, workflow: str, data: dict, seed: int, check) -> int:
    """Kill runs 20 times in a row (over as many runs as that takes), checking each."""
    (tmp_path / "crash_nodes.py").write_text(NODES)
    (tmp_path / "prog.kflow").write_text(PROGRAM)
    env = dict(os.environ, KFLOW_CACHE_DIR=str(tmp_path / "cache"))
    # warm the compile cache so kills land in the run, not in the checker
    subprocess.run([sys.executable, "-m", "kailash_dsl", "dis", "prog.kflow"], env=env,
                   cwd=tmp_path, capture_output=True, check=True)
    rng = random.Random(seed)
    kills = runs = 0
    while kills < KILLS:
        runs += 1
        got = _drive_run(tmp_path, f"r{runs}", workflow, data, rng, KILLS - kills)
        kills += got["kills"]
        check(got)
    return runs


def test_saga_survives_kills_during_compensation(tmp_path):
    def check(got):
        assert got["result"]["status"] == "completed"
        assert got["result"]["output"] == [f"{'undone' if i % 2 else 'shipped'} {i}"
                                           for i in range(8)]
        effects = json.loads((got["state"] / "effects.json").read_text())
        kinds = [e["kind"] for e in effects.values()]
        # every order charged and reserved once, even ones shipped, and exactly one
        # refund and release per failed order
        assert kinds.count("charge") == 8 and kinds.count("reserve") == 8
        assert kinds.count("ship") == 4
        assert kinds.count("refund") == 4 and kinds.count("release") == 4
        for i in (1, 3, 5, 7):
            assert f"results[{i}].c.compensate" in got["recorded"]
            assert f"results[{i}].r.compensate" in got["recorded"]

    _drive_with_kills(tmp_path, "Orders", {"n": 8}, seed=7, check=check)


def test_2pc_survives_kills_during_commit(tmp_path):
    def check(got):
        res = got["result"]
        ledger = json.loads((got["state"] / "ledger.json").read_text())
        assert ledger["pending"] == {}, "a participant was left prepared (half-committed)"
        bal = ledger["balances"]
        commits = sum(1 for k in got["recorded"] if k.endswith("tx.decision"))
        decisions = _decisions(tmp_path, got)
        committed = sum(1 for v in decisions if v == "commit")
        assert bal.get("a", 100) + bal.get("b", 100) == 200, "balances do not add up"
        assert bal.get("b", 100) == 100 + 10 * committed, (bal, decisions)
        if res["status"] == "completed":
            assert committed == 8 and res["output"] == {"balances": bal, "pending": 0}
        else:
            # §8: a crash before the decision was recorded means abort
            assert res["error"]["kind"] == "TransactionAborted", res
            assert decisions[-1] == "abort" and commits == len(decisions)

    _drive_with_kills(tmp_path, "Transfers", {"n": 8}, seed=11, check=check)


def _decisions(tmp_path, got) -> list:
    con = sqlite3.connect(tmp_path / "runs.db")
    rid = got["result"]["run_id"]
    rows = con.execute("SELECT key, value FROM steps WHERE run_id=? AND key LIKE "
                       "'%tx.decision'", (rid,)).fetchall()
    con.close()
    order = sorted(rows, key=lambda r: int(r[0].split("[")[1].split("]")[0]))
    return [json.loads(v) for _, v in order]

