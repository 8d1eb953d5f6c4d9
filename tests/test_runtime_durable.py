"""Durability through the library API and the CLI: group commits, what is journaled,
journaled values across processes, parking on timers, and resuming a changed program.

The run cases in tests/cases/run cover the language; these tests look at the journal
and the run's bookkeeping directly.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest

from kailash_dsl.runtime import api
from kailash_dsl.runtime.nodes import executor

NODES = """\
import os
from pathlib import Path


def _log(line):
    with open(os.path.join(os.environ["DUR_STATE"], "effects.log"), "a") as f:
        f.write(line + "\\n")
        f.flush()
        os.fsync(f.fileno())


def pure(n):
    return n + 1


def read(tag):
    _log("read:" + tag)
    return {"tag": tag}


def write(tag):
    _log("write:" + tag)
    return {"tag": tag}


def crash_once(tag):
    marker = Path(os.environ["DUR_STATE"]) / ("crashed-" + tag)
    if not marker.exists():
        marker.write_text("1")
        os._exit(137)
    _log("survived:" + tag)
    return {"tag": tag}
"""

DECLS = """\
@impl("dur_nodes:pure")
@effect(pure)
node Pure(n: int) -> int

@impl("dur_nodes:read")
@effect(read)
node Read(tag: str) -> {tag: str}

@impl("dur_nodes:write")
@effect(write, resource: "db")
node Write(tag: str) -> {tag: str}

@impl("dur_nodes:crash_once")
@effect(write, resource: "db")
node Crash(tag: str) -> {tag: str}
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "dur_nodes.py").write_text(NODES)
    (tmp_path / "state").mkdir()
    monkeypatch.setenv("DUR_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("KFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def write_program(project: Path, body: str, name: str = "d.kflow") -> Path:
    path = project / name
    path.write_text(DECLS + "\n" + body)
    return path


def start(path: Path, db: Path, input_data=None, run_id=None, block_for=30.0):
    loop = asyncio.new_event_loop()
    try:
        loop.set_default_executor(executor())
        return loop.run_until_complete(api.start(str(path), None, input_data or {},
                                                 run_id=run_id, db=db, block_for=block_for))
    finally:
        loop.close()


def effects(project: Path) -> list[str]:
    log = project / "state" / "effects.log"
    return log.read_text().splitlines() if log.exists() else []


def step_rows(db: Path, run_id: str) -> dict[str, tuple[int, object]]:
    con = sqlite3.connect(db)
    try:
        return {k: (ok, json.loads(v) if v else None) for k, ok, v in con.execute(
            "SELECT key, ok, value FROM steps WHERE run_id=?", (run_id,))}
    finally:
        con.close()


# --- group commits ---------------------------------------------------------------------

def test_reads_then_a_write_take_two_group_commits(project):
    reads = "\n".join(f'  let r{i} = Read(tag: "{i}")' for i in range(10))
    path = write_program(project, f"""\
workflow G() -> str {{
{reads}
  let w = Write(tag: r9.tag)
  let p = Pure(n: 1)
  return w.tag
}}
""")
    out = start(path, project / "runs.db", run_id="g")
    assert out.status == "completed", out.result
    # one commit before the write (covering the ten reads and the start), one with the
    # result
    assert out.run.flushes == 2
    assert len(effects(project)) == 11


def test_a_chain_of_writes_commits_before_each_write(project):
    path = write_program(project, """\
workflow C() -> str {
  let a = Write(tag: "a")
  let b = Write(tag: a.tag + "b")
  let c = Write(tag: b.tag + "c")
  return c.tag
}
""")
    out = start(path, project / "runs.db", run_id="c")
    assert out.result["output"] == "abc"
    # each write's outcome is durable before the next write starts (§7 rule 1), and the
    # result is committed: at least three commits; at most one more before the first write
    assert 3 <= out.run.flushes <= 4


def test_pure_work_commits_once(project):
    chain = "\n".join(f"  let p{i} = Pure(n: p{i - 1})" for i in range(1, 50))
    path = write_program(project, f"""\
workflow P() -> int {{
  let p0 = Pure(n: 0)
{chain}
  return p49
}}
""")
    out = start(path, project / "runs.db", run_id="p")
    assert out.result["output"] == 50
    assert out.run.flushes == 1


# --- what is journaled -----------------------------------------------------------------

def test_only_non_pure_outcomes_and_journaled_builtins_are_recorded(project):
    path = write_program(project, """\
workflow J() -> str {
  let p = Pure(n: 1)
  let r = Read(tag: "r${p}")
  let w = Write(tag: r.tag)
  let id = uuid()
  let x = p * 2
  return "${w.tag}-${len(id)}-${x}"
}
""")
    db = project / "runs.db"
    out = start(path, db, run_id="j")
    assert out.result["output"] == "r2-36-4"
    rows = step_rows(db, "j")
    assert rows["r"] == (1, {"tag": "r2"})
    assert rows["w"] == (1, {"tag": "r2"})
    assert "p" not in rows and "x" not in rows  # §7 rule 2
    uuids = [k for k in rows if "uuid" in k]
    assert len(uuids) == 1 and len(rows[uuids[0]][1]) == 36


def test_a_failed_step_records_its_final_error(project):
    (project / "dur_fail.py").write_text(
        "def boom(msg):\n    raise RuntimeError(msg)\n")
    path = project / "f.kflow"
    path.write_text("""\
@impl("dur_fail:boom")
@effect(read)
@retry(attempts: 2, backoff: constant(1ms))
node Boom(msg: str) -> null

workflow F() -> null {
  Boom(msg: "it broke")
  return null
}
""")
    db = project / "runs.db"
    out = start(path, db, run_id="f")
    assert out.status == "failed"
    assert out.result["error"] == {"kind": "StepFailed", "message": "it broke", "step": "Boom"}
    con = sqlite3.connect(db)
    ok, value, attempts = con.execute(
        "SELECT ok, value, attempts FROM steps WHERE run_id='f' AND key='Boom'").fetchone()
    con.close()
    assert ok == 0 and attempts == 2
    assert json.loads(value)["kind"] == "StepFailed"


# --- journaled values across processes -------------------------------------------------

def test_env_value_is_the_journaled_one_after_a_crash(project, kflow_proc):
    path = write_program(project, """\
workflow E() -> str {
  let v = env("DUR_VAR") ?? "unset"
  let w = Write(tag: v)
  Crash(tag: "env")
  let again = env("DUR_VAR") ?? "unset"
  return "${w.tag}/${again}"
}
""")
    db = project / "runs.db"
    env = {"DUR_STATE": str(project / "state"), "KFLOW_CACHE_DIR": str(project / "cache"),
           "DUR_VAR": "first-process"}
    first = kflow_proc("run", path, "--run-id", "e", "--db", db, "--format", "json",
                       cwd=project, env=env)
    assert first.exit_code == 137 and first.stdout == ""  # a dead process prints nothing
    con = sqlite3.connect(db)
    assert con.execute("SELECT status FROM runs WHERE run_id='e'").fetchone() == ("running",)
    con.close()
    env["DUR_VAR"] = "second-process"
    second = kflow_proc("resume", "e", "--db", db, "--format", "json", cwd=project, env=env)
    assert second.exit_code == 0, second.stderr
    assert json.loads(second.stdout)["output"] == "first-process/first-process"
    assert effects(project) == ["write:first-process", "survived:env"]


# --- timers ----------------------------------------------------------------------------

def test_a_sleep_longer_than_block_for_parks_and_resumes_after_the_wake_time(project,
                                                                           kflow_proc):
    path = write_program(project, """\
workflow S() -> str {
  let a = Write(tag: "before")
  sleep 4s
  let b = Write(tag: "after")
  return b.tag
}
""")
    db = project / "runs.db"
    env = {"DUR_STATE": str(project / "state"), "KFLOW_CACHE_DIR": str(project / "cache")}
    t0 = time.time()
    parked = kflow_proc("run", path, "--run-id", "s", "--db", db, "--format", "json",
                        "--block-for", "0s", cwd=project, env=env)
    assert parked.exit_code == 3, parked.stderr
    assert json.loads(parked.stdout)["status"] == "waiting"
    con = sqlite3.connect(db)
    status, wake_at = con.execute("SELECT status, wake_at FROM runs WHERE run_id='s'").fetchone()
    con.close()
    # (4 s: long enough that the early resume below starts before it, even under load)
    assert status == "waiting" and t0 + 3.9 < wake_at < time.time() + 4.1
    early = kflow_proc("resume", "s", "--db", db, "--format", "json", "--block-for", "0s",
                       cwd=project, env=env)
    assert early.exit_code == 3
    done = kflow_proc("resume", "s", "--db", db, "--format", "json", "--block-for", "10s",
                      cwd=project, env=env)
    assert done.exit_code == 0, done.stderr
    assert time.time() >= wake_at
    assert json.loads(done.stdout)["output"] == "after"
    assert effects(project) == ["write:before", "write:after"]


# --- resuming a changed program (§7 rule 4) --------------------------------------------

WAITING = """\
workflow W(id: str) -> str {
  let a = Write(tag: "a-${id}")
  let go: bool? = wait "go" timeout 1h
  let b = Write(tag: "b-${id}")
  return b.tag
}
"""


def _cli(project, kflow_proc):
    """`kflow ...` in the project, with the nodes' state and compile cache inside it."""
    env = {"DUR_STATE": str(project / "state"), "KFLOW_CACHE_DIR": str(project / "cache")}
    return lambda *args: kflow_proc(*args, cwd=project, env=env)


def test_resume_of_a_changed_program(project, kflow_proc):
    path = write_program(project, WAITING)
    db = project / "runs.db"
    k = _cli(project, kflow_proc)

    parked = k("run", path, "--run-id", "w", "--db", db, "--format", "json", "--input",
               '{"id": "1"}', "--block-for", "0s")
    assert parked.exit_code == 3, parked.stderr
    assert k("signal", "w", "go", "--data", "true", "--db", db).exit_code == 0

    # whitespace and comments: the same program
    write_program(project, "# reformatted\n" + WAITING.replace("  let a", "\n  let a"))
    same = k("resume", "w", "--db", db, "--format", "json", "--block-for", "0s")
    assert same.exit_code == 0, same.stderr
    assert json.loads(same.stdout)["output"] == "b-1"


def test_resume_refused_when_a_step_changed(project, kflow_proc):
    path = write_program(project, WAITING)
    db = project / "runs.db"
    k = _cli(project, kflow_proc)

    assert k("run", path, "--run-id", "w", "--db", db, "--format", "json", "--input",
             '{"id": "1"}', "--block-for", "0s").exit_code == 3
    before = db.read_bytes()
    write_program(project, WAITING.replace('"b-${id}"', '"B-${id}"'))
    refused = k("resume", "w", "--db", db, "--format", "json")
    assert refused.exit_code == 2
    assert "E0601" in refused.stderr and "Traceback" not in refused.stderr
    assert refused.stdout == ""
    assert db.read_bytes() == before
    # the journaled step `a` still exists under its key: --allow-changed goes on
    assert k("signal", "w", "go", "--data", "true", "--db", db).exit_code == 0
    allowed = k("resume", "w", "--db", db, "--format", "json", "--allow-changed")
    assert allowed.exit_code == 0, allowed.stderr
    assert json.loads(allowed.stdout)["output"] == "B-1"
    assert effects(project) == ["write:a-1", "write:B-1"]


def test_allow_changed_refused_when_a_journaled_step_is_gone(project, kflow_proc):
    path = write_program(project, WAITING)
    db = project / "runs.db"
    k = _cli(project, kflow_proc)

    assert k("run", path, "--run-id", "w", "--db", db, "--format", "json", "--input",
             '{"id": "1"}', "--block-for", "0s").exit_code == 3
    write_program(project, WAITING.replace("let a = Write", "let renamed = Write"))
    refused = k("resume", "w", "--db", db, "--format", "json", "--allow-changed")
    assert refused.exit_code == 2
    assert "Traceback" not in refused.stderr
    assert "`a`" in refused.stderr or " a" in refused.stderr
    assert effects(project) == ["write:a-1"]


def test_a_result_of_the_wrong_type_names_the_node_and_the_field(project):
    (project / "dur_bad.py").write_text(
        "def bad(n):\n    return {'items': [{'qty': 1}, {'qty': 'two'}]}\n")
    path = project / "b.kflow"
    path.write_text("""\
@impl("dur_bad:bad")
@effect(read)
node Lines(n: int) -> {items: list[{qty: int}]}

workflow B() -> int {
  let l = Lines(n: 1)
  return len(l.items)
}
""")
    out = start(path, project / "runs.db", run_id="b")
    assert out.status == "failed"
    err = out.result["error"]
    assert err["kind"] == "TypeError" and err["step"] == "l"
    assert "Lines" in err["message"] and "items[1].qty" in err["message"]
    assert "int" in err["message"]
