"""Bad input to run/resume/signal/show/runs: exit 2, one clear line, journal untouched.

Every refusal is checked in a real process (`python -m kailash_dsl`): the exit status
is 2, stderr is one `error: ...` line that says what is wrong (no traceback), and when
the journal file existed before, its bytes are the same afterwards. Also here: a
finished run id returns its recorded result without running anything, a signal whose
payload has the wrong type is refused while the run keeps waiting, and the JSON shapes
of `kflow runs` and `kflow show`.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

PROGRAM = """\
type Item { sku: str, qty: int = 1 }

type Decision { approved: bool, by: str }

@impl("err_nodes:record")
@effect(write, resource: "log")
node Record(name: str) -> {name: str}

@impl("err_nodes_missing_module:record")
@effect(write, resource: "log")
node Ghost(name: str) -> {name: str}

## Take an order.
workflow Order(id: str, items: list[Item], rush: bool = false) -> {id: str, count: int} {
  let r = Record(name: id)
  return {id: r.name, count: sum([i.qty for i in items])}
}

workflow Approve(id: str) -> str {
  Record(name: "asked:${id}")
  let d: Decision? = wait "decision" timeout 1h
  return if d?.approved ?? false then "yes by ${d?.by}" else "no"
}

workflow Haunted() -> str {
  let g = Ghost(name: "boo")
  return g.name
}
"""

NODES = """\
import os


def record(name):
    with open(os.path.join(os.environ["ERR_STATE"], "effects.log"), "a") as log:
        log.write(name + "\\n")
    return {"name": name}
"""

GOOD_INPUT = json.dumps({"id": "o1", "items": [{"sku": "a"}, {"sku": "b", "qty": 2}]})


@pytest.fixture
def project(tmp_path: Path):
    (tmp_path / "wf.kflow").write_text(PROGRAM)
    (tmp_path / "err_nodes.py").write_text(NODES)
    (tmp_path / "state").mkdir()
    return tmp_path


def _env(project: Path) -> dict:
    return {"KFLOW_CACHE_DIR": str(project / "cache"), "ERR_STATE": str(project / "state"),
            "KFLOW_DB": str(project / "default.db")}


@pytest.fixture
def k(kflow, project):
    """`kflow ...` in this process (fast; an uncaught exception fails the test), in the
    project folder, with its own cache and state."""

    def run(*args):
        return kflow(*args, cwd=project, env=_env(project))

    return run


@pytest.fixture
def kp(kflow_proc, project):
    """`kflow ...` as a real process: exit status and stderr exactly as a user sees them."""

    def run(*args):
        return kflow_proc(*args, cwd=project, env=_env(project))

    return run


def digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in (path, Path(f"{path}-wal")):
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


def effects(project: Path) -> list[str]:
    log = project / "state" / "effects.log"
    return log.read_text().splitlines() if log.exists() else []


def assert_refused(res, *needles: str) -> str:
    """Exit 2 and one clear `error:` line naming every needle; no traceback."""
    assert res.exit_code == 2, (res.exit_code, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: "), lines[0]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    assert res.stdout == ""
    return lines[0]


@pytest.fixture
def journal(k, project) -> Path:
    """A journal with one completed run (`done`) in it."""
    db = project / "runs.db"
    res = k("run", "wf.kflow", "--workflow", "Order", "--input", GOOD_INPUT, "--run-id", "done",
            "--db", db, "--format", "json")
    assert res.exit_code == 0, res.stderr
    return db


# --- the program and the input --------------------------------------------------------

@pytest.mark.parametrize("input_json, needles", [
    ({"items": []}, ["`id`", "missing", "str"]),
    ({"id": "o1", "items": [], "colour": "red"}, ["`colour`", "not a parameter", "id: str"]),
    ({"id": "o1", "itemz": []}, ["`itemz`", "`items`"]),  # did you mean
    ({"id": 5, "items": []}, ["`id`", "str", "int"]),
    ({"id": "o1", "items": [{"sku": "a"}, {"sku": "b", "qty": "two"}]},
     ["items[1].qty", "int", "str", "two"]),
    ({"id": "o1", "items": [{"qty": 2}]}, ["items[0].sku", "missing", "str"]),
    ({"id": "o1", "items": {"sku": "a"}}, ["`items`", "list[Item]"]),
    ({"id": "o1", "items": [], "rush": "yes"}, ["`rush`", "bool", "str"]),
    ([1, 2], ["JSON object", "list"]),
])
def test_bad_input_is_refused_naming_the_field(k, journal, input_json, needles):
    before = digest(journal)
    res = k("run", "wf.kflow", "--workflow", "Order", "--input", json.dumps(input_json),
            "--db", journal, "--format", "json")
    assert_refused(res, *needles)
    assert digest(journal) == before


def test_input_that_is_not_json(kp, journal):
    before = digest(journal)
    res = kp("run", "wf.kflow", "--workflow", "Order", "--input", "{id: 1}", "--db", journal)
    assert_refused(res, "--input", "not valid JSON")
    assert digest(journal) == before


def test_input_file_that_is_not_json(k, project, journal):
    (project / "in.json").write_text("not json at all")
    before = digest(journal)
    res = k("run", "wf.kflow", "--workflow", "Order", "--input-file", "in.json", "--db", journal)
    assert_refused(res, "not valid JSON")
    assert digest(journal) == before


def test_unknown_workflow(k, journal):
    before = digest(journal)
    res = k("run", "wf.kflow", "--workflow", "Nope", "--input", "{}", "--db", journal)
    assert_refused(res, "`Nope`", "Order", "Approve")
    assert digest(journal) == before


def test_several_workflows_and_none_chosen(k, journal):
    before = digest(journal)
    res = k("run", "wf.kflow", "--input", "{}", "--db", journal)
    assert_refused(res, "--workflow")
    assert digest(journal) == before


def test_missing_program_file(k, journal):
    before = digest(journal)
    res = k("run", "nope.kflow", "--db", journal)
    assert_refused(res, "nope.kflow")
    assert digest(journal) == before


def test_program_with_type_errors(kp, project, journal):
    (project / "bad.kflow").write_text(
        "workflow B(x: int) -> str {\n  let y: str = x + 1\n  return y\n}\n")
    before = digest(journal)
    res = kp("run", "bad.kflow", "--input", '{"x": 1}', "--db", journal, "--format", "json")
    assert res.exit_code == 2
    assert "Traceback" not in res.stderr
    assert "E0201" in res.stderr and "bad.kflow:2:" in res.stderr  # rendered diagnostics
    assert res.stderr.rstrip().splitlines()[-1].startswith("error: ")
    assert res.stdout == ""
    assert digest(journal) == before
    assert not (project / "default.db").exists()


# --- the journal ----------------------------------------------------------------------

def test_journal_path_whose_folder_is_a_file(kp, project):
    (project / "afile").write_text("x")
    res = kp("run", "wf.kflow", "--workflow", "Order", "--input", GOOD_INPUT,
            "--db", project / "afile" / "runs.db")
    assert_refused(res, "journal")
    assert (project / "afile").read_text() == "x"
    assert effects(project) == []


def test_journal_path_that_is_a_folder(k, project):
    (project / "adir").mkdir()
    res = k("run", "wf.kflow", "--workflow", "Order", "--input", GOOD_INPUT,
            "--db", project / "adir")
    assert_refused(res, "folder")
    assert effects(project) == []


def test_db_that_is_not_sqlite_in_a_process(kp, project):
    db = project / "notes.db"
    db.write_text("not a database")
    res = kp("run", "wf.kflow", "--workflow", "Order", "--input", GOOD_INPUT, "--db", db)
    assert_refused(res, "notes.db", "not")
    assert db.read_text() == "not a database"


def test_db_that_is_not_sqlite(k, project):
    db = project / "notes.db"
    db.write_text("these are my notes, not a database\n" * 20)
    before = digest(db)
    for args in (["run", "wf.kflow", "--workflow", "Order", "--input", GOOD_INPUT],
                 ["resume", "r1"], ["show", "r1"], ["runs"], ["signal", "r1", "decision"]):
        res = k(*args, "--db", db)
        assert_refused(res, "notes.db", "not")
        assert digest(db) == before, args
    assert effects(project) == []


def test_sqlite_file_that_is_not_a_journal(k, project):
    db = project / "app.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.execute("INSERT INTO customers (name) VALUES ('ada')")
    con.commit()
    con.close()
    before = digest(db)
    for args in (["run", "wf.kflow", "--workflow", "Order", "--input", GOOD_INPUT],
                 ["resume", "r1"], ["show", "r1"], ["runs"], ["signal", "r1", "decision"]):
        res = k(*args, "--db", db)
        assert_refused(res, "app.db", "not a kflow journal")
        assert digest(db) == before, args
    assert effects(project) == []


def test_journal_from_a_newer_schema(k, project, journal):
    con = sqlite3.connect(journal)
    con.execute("UPDATE kflow_meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    before = digest(journal)
    for args in (["run", "wf.kflow", "--workflow", "Order", "--input", GOOD_INPUT],
                 ["run", "wf.kflow", "--workflow", "Order", "--input", GOOD_INPUT,
                  "--run-id", "done"],
                 ["resume", "done"], ["show", "done"], ["runs"], ["signal", "done", "decision"]):
        res = k(*args, "--db", journal)
        assert_refused(res, "99", "newer")
        assert digest(journal) == before, args
    assert effects(project) == ["o1"]


@pytest.mark.parametrize("command", [["resume", "ghost"], ["show", "ghost"],
                                     ["signal", "ghost", "decision", "--data", "null"],
                                     ["show", "ghost", "--format", "json"]])
def test_unknown_run_id(k, journal, command):
    before = digest(journal)
    res = k(*command, "--db", journal)
    assert_refused(res, "ghost")
    assert digest(journal) == before


def test_resume_without_a_journal(k, project):
    res = k("resume", "r1", "--db", project / "nothing.db")
    assert_refused(res, "nothing.db")
    assert not (project / "nothing.db").exists()


# --- finished runs, signals -----------------------------------------------------------

def test_finished_run_id_returns_the_recorded_result(k, project, journal):
    assert effects(project) == ["o1"]
    before = digest(journal)
    res = k("run", "wf.kflow", "--workflow", "Order", "--input", GOOD_INPUT, "--run-id", "done",
            "--db", journal, "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout) == {"run_id": "done", "status": "completed",
                                      "output": {"id": "o1", "count": 3}, "error": None}
    assert effects(project) == ["o1"]  # nothing ran again
    assert digest(journal) == before
    res = k("resume", "done", "--db", journal, "--format", "json")
    assert res.exit_code == 0
    assert json.loads(res.stdout)["output"] == {"id": "o1", "count": 3}
    assert effects(project) == ["o1"]


def test_signal_with_a_payload_of_the_wrong_type(k, project):
    db = project / "runs.db"
    res = k("run", "wf.kflow", "--workflow", "Approve", "--input", '{"id": "e1"}',
            "--run-id", "ap", "--db", db, "--block-for", "0s", "--format", "json")
    assert res.exit_code == 3, res.stderr
    assert json.loads(res.stdout)["status"] == "waiting"
    before = digest(db)
    for data, needles in (('{"approved": "yes", "by": "ops"}', ["approved", "bool", "str"]),
                          ('{"approved": true}', ["by", "missing"]),
                          ('[true]', ["decision", "Decision"])):
        bad = k("signal", "ap", "decision", "--data", data, "--db", db)
        assert_refused(bad, *needles)
        assert "keeps waiting" in bad.stderr
        assert digest(db) == before
    bad = k("signal", "ap", "decisoin", "--data", "null", "--db", db)
    assert_refused(bad, "decisoin", "decision")
    bad = k("signal", "ap", "decision", "--data", "{not json", "--db", db)
    assert_refused(bad, "--data", "JSON")
    assert digest(db) == before
    # the run is still waiting: it parks again, and a good signal finishes it
    still = k("resume", "ap", "--db", db, "--block-for", "0s", "--format", "json")
    assert still.exit_code == 3
    assert json.loads(still.stdout)["status"] == "waiting"
    ok = k("signal", "ap", "decision", "--data", '{"approved": true, "by": "ops"}', "--db", db)
    assert ok.exit_code == 0, ok.stderr
    done = k("resume", "ap", "--db", db, "--format", "json")
    assert done.exit_code == 0, done.stderr
    assert json.loads(done.stdout)["output"] == "yes by ops"
    assert effects(project) == ["asked:e1"]
    late = k("signal", "ap", "decision", "--data", '{"approved": true, "by": "ops"}', "--db", db)
    assert_refused(late, "completed")


def test_import_failure_names_the_step(k, project):
    db = project / "runs.db"
    res = k("run", "wf.kflow", "--workflow", "Haunted", "--input", "{}", "--db", db,
            "--format", "json")
    assert res.exit_code == 1, res.stderr
    assert "Traceback" not in res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "failed"
    assert out["error"]["kind"] == "StepFailed"
    assert "err_nodes_missing_module" in out["error"]["message"]
    assert out["error"]["step"] == "g"


# --- JSON shapes of runs and show -----------------------------------------------------

def test_runs_json_shape(k, project, journal):
    k("run", "wf.kflow", "--workflow", "Approve", "--input", '{"id": "e2"}', "--run-id", "ap2",
      "--db", journal, "--block-for", "0s", "--format", "json")
    res = k("runs", "--db", journal, "--format", "json")
    assert res.exit_code == 0, res.stderr
    runs = json.loads(res.stdout)
    assert isinstance(runs, list) and len(runs) == 2
    by_id = {r["run_id"]: r for r in runs}
    assert set(by_id) == {"done", "ap2"}
    for r in runs:
        assert {"run_id", "workflow", "status", "created_at", "updated_at", "output",
                "error"} <= set(r)
        assert isinstance(r["created_at"], float) and r["updated_at"] >= r["created_at"]
    assert by_id["done"]["status"] == "completed"
    assert by_id["done"]["workflow"].endswith("Order")
    assert by_id["done"]["output"] == {"id": "o1", "count": 3}
    assert by_id["ap2"]["status"] == "waiting"
    assert [r["run_id"] for r in runs] == ["ap2", "done"]  # newest first
    only = json.loads(k("runs", "--db", journal, "--format", "json", "--status",
                        "waiting").stdout)
    assert [r["run_id"] for r in only] == ["ap2"]
    empty = k("runs", "--db", project / "none.db", "--format", "json")
    assert empty.exit_code == 0 and json.loads(empty.stdout) == []


def test_show_json_shape(k, journal):
    res = k("show", "done", "--db", journal, "--format", "json")
    assert res.exit_code == 0, res.stderr
    shown = json.loads(res.stdout)
    assert set(shown) >= {"run", "steps", "events"}
    run = shown["run"]
    assert {"run_id": "done", "status": "completed", "output": {"id": "o1", "count": 3},
            "error": None}.items() <= run.items()
    assert run["workflow"].endswith("Order")
    steps = {s["key"]: s for s in shown["steps"]}
    assert "r" in steps
    r = steps["r"]
    assert {"key", "ok", "value", "attempts", "started_at", "finished_at"} <= set(r)
    assert r["ok"] is True and r["value"] == {"name": "o1"} and r["attempts"] == 1
    events = shown["events"]
    assert all({"seq", "ts", "type", "step", "data"} <= set(e) for e in events)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "completed"
    assert "step.completed" in types


def test_open_run_id_with_a_different_input_is_refused(k, project):
    db = project / "runs.db"
    res = k("run", "wf.kflow", "--workflow", "Approve", "--input", '{"id": "e1"}',
            "--run-id", "ap", "--db", db, "--block-for", "0s", "--format", "json")
    assert res.exit_code == 3
    before = digest(db)
    other = k("run", "wf.kflow", "--workflow", "Approve", "--input", '{"id": "e2"}',
              "--run-id", "ap", "--db", db, "--block-for", "0s", "--format", "json")
    assert_refused(other, "`ap`", "kflow resume ap")
    assert digest(db) == before
    # the same input continues the open run (like `kflow resume`), running nothing twice
    same = k("run", "wf.kflow", "--workflow", "Approve", "--input", '{"id": "e1"}',
             "--run-id", "ap", "--db", db, "--block-for", "0s", "--format", "json")
    assert same.exit_code == 3
    assert effects(project) == ["asked:e1"]


@pytest.mark.parametrize("extra, needles", [
    (["--input-file", "nope.json"], ["--input-file", "nope.json"]),
    (["--input", "{}", "--input-file", "in.json"], ["--input", "--input-file"]),
    (["--input", "{}", "--block-for", "forever"], ["--block-for", "forever"]),
    (["--input", "{}", "--format", "yaml"], ["--format", "yaml"]),
], ids=["missing-input-file", "both-inputs", "bad-block-for", "bad-format"])
def test_usage_errors_create_no_journal(k, project, extra, needles):
    (project / "in.json").write_text("{}")
    res = k("run", "wf.kflow", "--workflow", "Approve", "--db", project / "new.db", *extra)
    assert_refused(res, *needles)
    assert not (project / "new.db").exists()


def test_resume_when_the_program_file_is_gone(k, project):
    db = project / "runs.db"
    res = k("run", "wf.kflow", "--workflow", "Approve", "--input", '{"id": "e1"}',
            "--run-id", "ap", "--db", db, "--block-for", "0s", "--format", "json")
    assert res.exit_code == 3
    (project / "wf.kflow").rename(project / "moved.kflow")
    before = digest(db)
    gone = k("resume", "ap", "--db", db, "--format", "json")
    assert_refused(gone, "wf.kflow")
    assert digest(db) == before
