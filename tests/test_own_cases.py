"""The project's own run cases (tests/cases/run), one test per file.

Mirrors the directives of ../shared/conformance/run.py for run cases (see its README):
`input`, `workflow`, `expect-status`, `expect-output`, `expect-error-kind`,
`expect-effects`, `expect-effects-order`, `resume-until-done`, `signal`, `check`, `skip`.
Each case runs as `python -m kailash_dsl run FILE --run-id case-STEM --db TMP/runs.db
--format json --block-for 2s --input ...` in a fresh temporary folder, with
$KFLOW_CONF_STATE pointing at an empty folder and tests/cases/run on PYTHONPATH so
`case_nodes` imports. Nothing here depends on ../shared.

One extension, ignored by the shared runner (it only reads the keys it knows):

| directive | meaning |
|---|---|
| `# expect-emits: [{"name": n, "data": d}, ...]` | the run's `emit` events, in order (from `kflow show --format json`) |

A `.kflow` file with no directives is a module imported by other cases.

The environment differs from the shared runner's in three ways some cases rely on: the
run id is `case-STEM`, `KFLOW_CASE_VAR=from-the-environment` is set and
`KFLOW_CASE_UNSET` is not. Cases run concurrently (`KFLOW_CASE_WORKERS`, default 6),
each with its own processes, folder and state; they share one compile cache per session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "tests" / "cases" / "run"
TIMEOUT_S = 15
#: cases run concurrently, each in its own processes and folder
WORKERS = int(os.environ.get("KFLOW_CASE_WORKERS", "6"))

KNOWN = {
    "check", "input", "workflow", "expect-status", "expect-output", "expect-error-kind",
    "expect-effects", "expect-effects-order", "resume-until-done", "signal", "skip",
    "expect-emits",
}
RUN_KEYS = {"input", "expect-status", "expect-output", "expect-error-kind", "expect-effects",
            "expect-effects-order", "expect-emits"}


class Failure(Exception):
    pass


def directives(path: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped.startswith("# "):
            continue
        key, _, value = stripped[2:].partition(":")
        key = key.strip()
        if key in KNOWN:
            found.setdefault(key, []).append(value.strip())
    return found


def call(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "kailash_dsl", *args], env=env, cwd=cwd,
                              capture_output=True, text=True, timeout=TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        raise Failure(f"`kflow {' '.join(args)}` ran past {TIMEOUT_S}s") from exc


def parse_json(proc: subprocess.CompletedProcess, what: str):
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise Failure(f"{what}: stdout is not one JSON object (exit {proc.returncode}); "
                      f"stdout={proc.stdout[-400:]!r} stderr={proc.stderr[-600:]!r}") from exc


def run_check(case: Path, spec: str, env, cwd) -> None:
    proc = call(["check", "--format", "json", str(case)], env, cwd)
    report = parse_json(proc, "check")
    diags = report.get("diagnostics", [])
    errors = Counter(f"{d['code']}@{d['line']}" for d in diags if d.get("severity") == "error")
    every = Counter(f"{d['code']}@{d['line']}" for d in diags)
    if spec == "ok":
        if errors or proc.returncode != 0:
            raise Failure(f"expected no errors, got {sorted(errors)} (exit {proc.returncode})")
        return
    wanted = Counter(spec.split())
    wanted_errors = Counter({k: v for k, v in wanted.items() if k.startswith("E")})
    wanted_warnings = Counter({k: v for k, v in wanted.items() if k.startswith("W")})
    if errors != wanted_errors:
        raise Failure(f"errors: expected {sorted(wanted_errors.elements())}, "
                      f"got {sorted(errors.elements())}")
    missing = wanted_warnings - every
    if missing:
        raise Failure(f"warnings missing: {sorted(missing.elements())}")


def run_case(case: Path, spec: dict[str, list[str]], env, cwd) -> dict:
    run_id = "case-" + case.stem
    db = str(cwd / "runs.db")
    args = ["run", str(case), "--run-id", run_id, "--db", db, "--format", "json",
            "--block-for", "2s", "--input", spec.get("input", ["{}"])[0]]
    if "workflow" in spec:
        args += ["--workflow", spec["workflow"][0]]
    proc = call(args, env, cwd)
    signals = list(spec.get("signal", []))
    for _ in range(10):
        crashed = proc.returncode not in (0, 1, 3) or not proc.stdout.strip()
        if crashed and "resume-until-done" in spec:
            proc = call(["resume", run_id, "--db", db, "--format", "json", "--block-for", "2s"],
                        env, cwd)
            continue
        if proc.returncode == 3 and signals:
            name, _, payload = signals.pop(0).partition(" ")
            sig = call(["signal", run_id, name, "--data", payload or "null", "--db", db],
                       env, cwd)
            if sig.returncode != 0:
                raise Failure(f"signal failed: {sig.stderr[-400:]}")
            proc = call(["resume", run_id, "--db", db, "--format", "json", "--block-for", "2s"],
                        env, cwd)
            continue
        break
    result = parse_json(proc, "run")
    status = spec.get("expect-status", ["completed"])[0]
    if result.get("status") != status:
        raise Failure(f"status {result.get('status')!r}, expected {status!r}; "
                      f"output={result.get('output')!r} error={result.get('error')!r} "
                      f"stderr={proc.stderr[-300:]!r}")
    if "expect-output" in spec:
        want = json.loads(spec["expect-output"][0])
        if result.get("output") != want:
            raise Failure(f"output {result.get('output')!r}, expected {want!r}")
    if "expect-error-kind" in spec:
        kind = (result.get("error") or {}).get("kind")
        if kind != spec["expect-error-kind"][0]:
            raise Failure(f"error kind {kind!r}, expected {spec['expect-error-kind'][0]!r} "
                          f"(error={result.get('error')!r})")
    log = cwd / "state" / "effects.log"
    effects = log.read_text().splitlines() if log.exists() else []
    if "expect-effects" in spec:
        want = json.loads(spec["expect-effects"][0])
        got = Counter(effects)
        if any(got[k] != v for k, v in want.items()):
            raise Failure(f"effects {dict(got)}, expected counts {want}")
    if "expect-effects-order" in spec:
        want = json.loads(spec["expect-effects-order"][0])
        if effects != want:
            raise Failure(f"effects in order {effects}, expected {want}")
    if "expect-emits" in spec:
        want = json.loads(spec["expect-emits"][0])
        shown = parse_json(call(["show", run_id, "--db", db, "--format", "json"], env, cwd),
                           "show")
        got = [e["data"] for e in shown["events"] if e["type"] == "emit"]
        if got != want:
            raise Failure(f"emitted {got!r}, expected {want!r}")
    return result


def case_env(cwd: Path, cache: Path | None = None) -> dict:
    env = dict(os.environ, KFLOW_CONF_STATE=str(cwd / "state"),
               KFLOW_CACHE_DIR=str(cache or cwd / "cache"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(CASES), str(REPO),
                                                        os.environ.get("PYTHONPATH")])))
    env.pop("KFLOW_DISABLE_PASSES", None)
    env["KFLOW_CASE_VAR"] = "from-the-environment"
    env.pop("KFLOW_CASE_UNSET", None)
    return env


def _cases() -> list:
    return [pytest.param(p, id=str(p.relative_to(CASES)))
            for p in sorted(CASES.rglob("*.kflow"))]


def test_there_are_enough_cases():
    runnable = [p for p in CASES.rglob("*.kflow") if directives(p).keys() & RUN_KEYS]
    assert len(runnable) >= 25


def _attempt(case: Path, cache: Path | None = None) -> str | None:
    """Run one case in a fresh folder; the failure message, or None when it passed.

    ``cache`` is a compile cache shared by the cases of one session (never the user's:
    the compiler under test may have changed since that was filled)."""
    spec = directives(case)
    with tempfile.TemporaryDirectory(prefix="kflow-case-") as tmp:
        cwd = Path(tmp)
        env = case_env(cwd, cache)
        try:
            if "check" in spec:
                run_check(case, spec["check"][0], env, cwd)
            if spec.keys() & RUN_KEYS:
                run_case(case, spec, env, cwd)
        except Failure as exc:
            return str(exc)
    return None


def _precompile(cases: list[Path], cache: Path) -> None:
    """Fill the shared cache in this process (the checker is imported once here instead
    of once per case process). A case whose program has errors is left to its run."""
    from kailash_dsl.compiler.pipeline import compile_file

    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("KFLOW_CACHE_DIR", str(cache))
        mp.delenv("KFLOW_DISABLE_PASSES", raising=False)
        for case in cases:
            compile_file(case)
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    """Start every selected case at once (they mostly wait on subprocesses, sleeps and
    signals), so the whole set takes about as long as its slowest case."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_own_run_case"
                and hasattr(item, "callspec")]
    runnable = [c for c in selected
                if "skip" not in directives(c) and directives(c).keys() - {"workflow"}]
    cache = tmp_path_factory.mktemp("own-cases-cache")
    _precompile(runnable, cache)
    pool = ThreadPoolExecutor(max_workers=WORKERS)
    futures = {c: pool.submit(_attempt, c, cache) for c in runnable}
    yield futures
    pool.shutdown(wait=True)


@pytest.mark.parametrize("case", _cases())
def test_own_run_case(case: Path, outcomes):
    spec = directives(case)
    if "skip" in spec or not (spec.keys() - {"workflow"}):
        pytest.skip("a helper module imported by other cases")
    future = outcomes.get(case)
    failure = future.result() if future is not None else _attempt(case)
    if failure is not None:
        pytest.fail(f"{case.name}: {failure}", pytrace=False)
