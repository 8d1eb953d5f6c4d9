"""Kill -9 at random moments, resume, repeat: §7's exactly-once-after-recording holds.

A workflow of 20 write steps (sequential ones, four in a `parallel` block, eight in a
`for` loop, one inside a sub-workflow) runs as a real process (`python -m kailash_dsl
run ... --run-id X --db D --format json`). Every node appends its step key to an effect
log with fsync, between two short sleeps. The test SIGKILLs the process from outside at
seeded random moments — either just after the process wrote a new effect (so the kill
often falls between an effect and its journal record), or at a random point of its
start-up and replay — then `kflow resume X`, twenty kills in a row, and finally lets it
finish.

What must hold (§7 rules 1 and 3):

* a step whose outcome is in the journal (the SQLite ``steps`` table) at some kill
  never runs again afterwards: its count of effect lines is frozen from then on;
* its effect happened before it was recorded (the line is in the log at that moment);
* a step that was running when the process died may run again (at-least-once), so a
  step may have more than one line — but only lines written *before* it was recorded;
* every step ends recorded, with its effect at least once, and the output is right.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = 20240611
KILLS = 20

PROGRAM = """\
@impl("crash_nodes:effect")
@effect(write, resource: "main")
node Effect(name: str) -> {name: str}

@impl("crash_nodes:effect")
@effect(write, resource: "sub")
node SubEffect(name: str) -> {name: str}

workflow Sub(after: str) -> str {
  let s = SubEffect(name: "s<${after}")
  return s.name
}

workflow Crashy(items: list[str]) -> {names: list[str], sub: str, loop: list[str]} {
  let w1 = Effect(name: "w1")
  let w2 = Effect(name: "w2")
  let w3 = Effect(name: "w3")
  parallel {
    let p1 = Effect(name: "p1")
    let p2 = Effect(name: "p2")
    let p3 = Effect(name: "p3")
    let p4 = Effect(name: "p4")
  }
  let loop = for item in items {
    let e = Effect(name: "l-${item}")
    yield e.name
  }
  let sub = Sub(after: w3.name)
  let w4 = Effect(name: "w4<${sub}")
  let w5 = Effect(name: "w5")
  let w6 = Effect(name: "w6")
  let w7 = Effect(name: "w7")
  return {
    names: [w1.name, w2.name, w3.name, p1.name, p2.name, p3.name, p4.name, w4.name, w5.name,
            w6.name, w7.name],
    sub: sub,
    loop: loop,
  }
}
"""

NODES = """\
import os
import time


def effect(name, *, ctx):
    time.sleep(0.015)
    with open(os.environ["CRASH_EFFECTS"], "a", encoding="utf-8") as log:
        log.write(ctx.step_key + "\\n")
        log.flush()
        os.fsync(log.fileno())
    time.sleep(0.015)
    return {"name": name}
"""

ITEMS = [f"i{n}" for n in range(8)]
KEYS = (["w1", "w2", "w3", "p1", "p2", "p3", "p4"] + [f"loop[{i}].e" for i in range(8)]
        + ["sub.s", "w4", "w5", "w6", "w7"])
EXPECTED_OUTPUT = {
    "names": ["w1", "w2", "w3", "p1", "p2", "p3", "p4", "w4<s<w3", "w5", "w6", "w7"],
    "sub": "s<w3",
    "loop": [f"l-{i}" for i in ITEMS],
}


def _recorded(db: Path) -> set[str]:
    if not db.exists():
        return set()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "steps" not in tables:
            return set()
        return {k for k, ok in con.execute(
            "SELECT key, ok FROM steps WHERE run_id='crashy'") if ok}
    finally:
        con.close()


def _lines(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def test_kill_nine_twenty_times(tmp_path: Path):
    """Twenty SIGKILLs in a row, landing on live runs; as many runs as that takes (on a
    fast machine one run can finish before twenty kills have landed on it)."""
    assert len(KEYS) == 20
    rng = random.Random(SEED)
    kills = 0
    runs = 0
    while kills < KILLS and runs < 6:
        runs += 1
        kills += _drive_one_run(tmp_path / f"run{runs}", rng, KILLS - kills)
    assert kills >= KILLS, f"only {kills} kills landed on live runs in {runs} runs"


def _drive_one_run(tmp_path: Path, rng: random.Random, budget: int) -> int:
    """Kill one run up to ``budget`` times, resume it to the end, check §7; the kills."""
    tmp_path.mkdir()
    work = tmp_path / "w"
    work.mkdir()
    (work / "crashy.kflow").write_text(PROGRAM)
    (work / "crash_nodes.py").write_text(NODES)
    db = tmp_path / "runs.db"
    log = tmp_path / "effects.log"
    env = dict(os.environ, CRASH_EFFECTS=str(log), KFLOW_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    base = [sys.executable, "-m", "kailash_dsl"]
    # warm the compile cache so every start spends its time in the run, not the checker
    warm = subprocess.run(base + ["dis", str(work / "crashy.kflow")], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert warm.returncode == 0, warm.stderr
    start = base + ["run", str(work / "crashy.kflow"), "--workflow", "Crashy",
                    "--run-id", "crashy", "--db", str(db), "--format", "json",
                    "--input", json.dumps({"items": ITEMS})]
    resume = base + ["resume", "crashy", "--db", str(db), "--format", "json"]

    frozen: dict[str, int] = {}  # step key -> its effect count when first seen recorded
    kills_mid_run = 0
    finished = None
    startup = None  # seconds from spawn to the first effect, measured on the first attempt
    attempt = 0
    while kills_mid_run < budget and attempt < 4 * budget:
        cmd = start if attempt == 0 else resume
        attempt += 1
        before = len(_lines(log))
        spawned = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        # Some kills land just after new progress (an effect written, its journal record
        # maybe not yet: the interesting window); the others at a random moment of the
        # start-up and replay (loading, claiming the run, replaying recorded steps).
        if startup is None or rng.random() < 0.4:
            deadline = time.monotonic() + 20
            while len(_lines(log)) <= before and proc.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.001)
            if startup is None:
                startup = time.monotonic() - spawned
            time.sleep(rng.uniform(0.0, 0.025))
        else:
            time.sleep(rng.uniform(0.1, 1.0) * startup)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills_mid_run += 1
        out, err = proc.communicate(timeout=30)
        assert "Traceback" not in err, err
        if proc.returncode == 0:
            finished = json.loads(out)
            break
        assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)

        lines = Counter(_lines(log))
        recorded = _recorded(db) & set(KEYS)
        for key in recorded:
            assert lines[key] >= 1, f"{key} is recorded but its effect never happened"
            frozen.setdefault(key, lines[key])
        for key, count in frozen.items():
            assert lines[key] == count, (
                f"step {key} ran again after its outcome was recorded "
                f"({count} effect(s) then, {lines[key]} now)")

    if finished is None:
        proc = subprocess.run(resume, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        finished = json.loads(proc.stdout)

    assert finished["status"] == "completed", finished
    assert finished["output"] == EXPECTED_OUTPUT
    lines = Counter(_lines(log))
    assert set(lines) == set(KEYS), sorted(set(lines) ^ set(KEYS))
    assert _recorded(db) >= set(KEYS)
    for key, count in frozen.items():
        assert lines[key] == count, f"step {key} ran again after its outcome was recorded"
    for key in KEYS:
        # at-least-once: a re-run only happens to a step a kill caught in flight
        assert 1 <= lines[key] <= 1 + kills_mid_run
    print(f"kills mid-run: {kills_mid_run}; re-run steps: "
          f"{ {k: c for k, c in lines.items() if c > 1} }")
    # a finished run, run again by id, returns the recorded result and runs nothing
    again = subprocess.run(start, env=env, cwd=tmp_path, capture_output=True, text=True,
                           timeout=60, check=False)
    assert again.returncode == 0
    assert json.loads(again.stdout)["output"] == EXPECTED_OUTPUT
    assert Counter(_lines(log)) == lines
    return kills_mid_run

