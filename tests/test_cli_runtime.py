"""The run-control commands as a user drives them: run → waiting → signal → resume,
cancel (of a waiting run and of a run another process is driving), show --follow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

NODES = '''
import os, time
from pathlib import Path

def _log(line):
    with open(Path(os.environ["CLI_STATE"]) / "effects.log", "a") as f:
        f.write(line + "\\n")

def book(name):
    _log("book:" + name)
    return {"ticket": "t-" + name}

def unbook(ticket):
    _log("unbook:" + ticket)
    return None

def nap(ms):
    time.sleep(ms / 1000)
    _log(f"nap:{ms}")
    return ms
'''

PROGRAM = '''
type Approval { ok: bool, by: str }

@impl("cli_nodes:book")
@effect(write, resource: "booking")
@compensate(Unbook)
node Book(name: str) -> {ticket: str}

@impl("cli_nodes:unbook")
@effect(write, resource: "booking")
node Unbook(ticket: str) -> null

@impl("cli_nodes:nap")
@effect(write, resource: "naps")
node Nap(ms: int) -> int

workflow Trip(who: str) -> str {
  transaction saga {
    let b = Book(name: who)
    let a: Approval? = wait "approval" timeout 1h
    let c = Book(name: "${who}-return")
  }
  return "${b.ticket} ${a?.by ?? "nobody"}"
}

workflow Naps(n: int) -> int {
  let naps = for i in range(n) {
    let z = Nap(ms: 200)
    yield z
  }
  return sum(naps)
}
'''


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "cli_nodes.py").write_text(NODES)
    (tmp_path / "trip.kflow").write_text(PROGRAM)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("CLI_STATE", str(state))
    monkeypatch.setenv("KFLOW_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def kflow(project: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kailash_dsl", *args], cwd=project,
                          capture_output=True, text=True, timeout=timeout)


def effects(project: Path) -> list[str]:
    log = project / "state" / "effects.log"
    return log.read_text().splitlines() if log.exists() else []


def test_wait_signal_resume_round_trip(project):
    first = kflow(project, "run", "trip.kflow", "-w", "Trip", "--input", '{"who": "ann"}',
                  "--run-id", "t1", "--db", "runs.db", "--block-for", "100ms", "--format",
                  "json")
    assert first.returncode == 3, first.stderr
    assert json.loads(first.stdout)["status"] == "waiting"
    waiting = kflow(project, "runs", "--db", "runs.db", "--status", "waiting", "--format",
                    "json")
    assert [r["run_id"] for r in json.loads(waiting.stdout)] == ["t1"]
    bad = kflow(project, "signal", "t1", "approval", "--data", '{"ok": "yes"}', "--db",
                "runs.db")
    assert bad.returncode == 2 and "`data.ok`: expected bool" in bad.stderr
    sent = kflow(project, "signal", "t1", "approval", "--data", '{"ok": true, "by": "bo"}',
                 "--db", "runs.db")
    assert sent.returncode == 0, sent.stderr
    done = kflow(project, "resume", "t1", "--db", "runs.db", "--format", "json")
    assert json.loads(done.stdout) == {"run_id": "t1", "status": "completed",
                                       "output": "t-ann bo", "error": None}
    assert effects(project) == ["book:ann", "book:ann-return"]


def test_a_wait_whose_timeout_passed_while_nothing_ran_resolves_to_null(project):
    src = (project / "trip.kflow").read_text().replace("timeout 1h", "timeout 1500ms")
    (project / "trip.kflow").write_text(src)
    first = kflow(project, "run", "trip.kflow", "-w", "Trip", "--input", '{"who": "cy"}',
                  "--run-id", "t2", "--db", "runs.db", "--block-for", "0s", "--format",
                  "json")
    assert first.returncode == 3
    time.sleep(1.6)  # the timeout passes while no process runs the workflow
    done = kflow(project, "resume", "t2", "--db", "runs.db", "--block-for", "0s",
                 "--format", "json")
    assert json.loads(done.stdout)["output"] == "t-cy nobody"


def test_a_signal_sent_after_the_wait_timed_out_is_not_its_answer(project):
    """Null on timeout (§5), whenever the run is resumed: a signal that arrives after
    the deadline does not turn a timed-out wait into an answered one."""
    src = (project / "trip.kflow").read_text().replace("timeout 1h", "timeout 1500ms")
    (project / "trip.kflow").write_text(src)
    first = kflow(project, "run", "trip.kflow", "-w", "Trip", "--input", '{"who": "di"}',
                  "--run-id", "t3", "--db", "runs.db", "--block-for", "0s", "--format",
                  "json")
    assert first.returncode == 3
    time.sleep(1.6)
    late = kflow(project, "signal", "t3", "approval", "--data", '{"ok": true, "by": "bo"}',
                 "--db", "runs.db")
    assert late.returncode == 0, late.stderr
    done = kflow(project, "resume", "t3", "--db", "runs.db", "--block-for", "0s",
                 "--format", "json")
    assert json.loads(done.stdout)["output"] == "t-di nobody"


def test_cancel_of_a_waiting_run_compensates_its_open_saga(project):
    kflow(project, "run", "trip.kflow", "-w", "Trip", "--input", '{"who": "di"}',
          "--run-id", "t3", "--db", "runs.db", "--block-for", "0s")
    res = kflow(project, "cancel", "t3", "--db", "runs.db", "--format", "json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["status"] == "cancelled" and out["error"]["kind"] == "Cancelled"
    assert effects(project) == ["book:di", "unbook:t-di"]
    again = kflow(project, "cancel", "t3", "--db", "runs.db")
    assert again.returncode == 2 and "already cancelled" in again.stderr
    signal = kflow(project, "signal", "t3", "approval", "--data", '{"ok": true, "by": "x"}',
                   "--db", "runs.db")
    assert signal.returncode == 2 and "cancelled" in signal.stderr


def test_cancel_reaches_a_run_driven_by_another_process(project):
    env = dict(os.environ)
    runner = subprocess.Popen(
        [sys.executable, "-m", "kailash_dsl", "run", "trip.kflow", "-w", "Naps", "--input",
         '{"n": 50}', "--run-id", "n1", "--db", "runs.db", "--format", "json"],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while len(effects(project)) < 2 and time.time() < deadline:
            time.sleep(0.05)
        res = kflow(project, "cancel", "n1", "--db", "runs.db", "--format", "json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["status"] == "cancelled"
        out, err = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert json.loads(out)["status"] == "cancelled", err
    assert runner.returncode == 1
    naps = len(effects(project))
    assert 2 <= naps < 50  # it stopped at a step boundary, long before the end
    time.sleep(0.5)
    assert len(effects(project)) == naps  # and nothing ran after


def test_show_follow_streams_until_the_run_ends(project):
    kflow(project, "run", "trip.kflow", "-w", "Trip", "--input", '{"who": "ed"}',
          "--run-id", "t4", "--db", "runs.db", "--block-for", "0s")
    follower = subprocess.Popen(
        [sys.executable, "-m", "kailash_dsl", "show", "t4", "--db", "runs.db", "--follow",
         "--format", "json"], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        time.sleep(0.8)
        kflow(project, "signal", "t4", "approval", "--data", '{"ok": true, "by": "fi"}',
              "--db", "runs.db")
        kflow(project, "resume", "t4", "--db", "runs.db")
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    events = [json.loads(line) for line in out.splitlines()]
    types = [e["type"] for e in events]
    assert types[0] == "started" and types[-1] == "completed", types
    assert "waiting" in types and "signalled" in types
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
