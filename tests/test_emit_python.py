"""`kflow emit python`: the eject, a readable asyncio module with the workflows' semantics.

- every example and fixture is snapshotted, compiles, and is ruff-clean;
- every conformance case that needs no journal (no crash, so no `# resume-until-done`)
  runs through the ejected module to its `# expect-output` / status / error kind / effect
  log, and to what `kflow run` prints for it;
- the fixture workflows and every example give the same result ejected as with `kflow run`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from emit_fixtures.support import (
    CASES,
    EXAMPLES,
    FIXTURES,
    REPO,
    PythonSnapshot,
    clean_sources,
    directives,
    load,
    snapshot_sources,
)

from kailash_dsl.emit import python as pyemit
from kailash_dsl.emit.pywrap import wrap, wrap_line

CONF = CASES.parent


def _eject(path: Path, out: Path) -> Path:
    program = load(path)
    assert program is not None
    out.write_text(pyemit.emit(program, source=path.name), encoding="utf-8")
    return out


def _env(**extra) -> dict:
    env = dict(os.environ)
    paths = [str(p) for p in extra.pop("paths", [])] + [str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _run_eject(module: Path, args: list[str], env: dict, cwd: Path) -> dict:
    proc = subprocess.run([sys.executable, str(module), "--format", "run", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}") from None


def _kflow_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("kailash_dsl.runtime.vm") is not None


def _kflow(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kailash_dsl", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def _run_kflow(path: Path, run_args: list[str], env: dict, cwd: Path,
               signals: list[tuple[str, str]] = ()) -> dict:
    db = str(cwd / "runs.db")
    proc = _kflow(["run", str(path), "--run-id", "emit-cmp", "--db", db, "--format", "json",
                   "--block-for", "2s", *run_args], env, cwd)
    result = json.loads(proc.stdout)
    for name, payload in signals:
        if result["status"] != "waiting":
            break
        sig = _kflow(["signal", "emit-cmp", name, "--data", payload, "--db", db], env, cwd)
        assert sig.returncode == 0, sig.stderr
        proc = _kflow(["resume", "emit-cmp", "--db", db, "--format", "json",
                       "--block-for", "2s"], env, cwd)
        result = json.loads(proc.stdout)
    return result


def _same_result(ejected: dict, durable: dict) -> None:
    assert ejected["status"] == durable["status"], (ejected, durable)
    if durable["status"] == "completed":
        assert ejected["output"] == durable["output"]
    else:
        assert ejected["error"]["kind"] == durable["error"]["kind"], (ejected, durable)


# ----------------------------------------------------------------------------- text


@pytest.mark.parametrize("path", [p for _, p in snapshot_sources()],
                         ids=[i for i, _ in snapshot_sources()])
def test_module_snapshot(path, snapshot):
    text = pyemit.emit(load(path), source=path.name)
    assert text == pyemit.emit(load(path), source=path.name), "output must be deterministic"
    assert text == snapshot(extension_class=PythonSnapshot)


@pytest.mark.parametrize("path", [p for _, p in clean_sources()],
                         ids=[i for i, _ in clean_sources()])
def test_module_compiles(path):
    text = pyemit.emit(load(path), source=path.name)
    compile(text, f"{path.stem}.py", "exec")
    assert "THERE IS NO JOURNAL" in text


def _ruff() -> str:
    exe = shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed (pip install ruff)")
    return exe


@pytest.mark.parametrize("path", [p for _, p in clean_sources()],
                         ids=[i for i, _ in clean_sources()])
def test_module_is_ruff_clean(path, tmp_path):
    ruff = _ruff()
    out = _eject(path, tmp_path / f"{path.stem}_eject.py")
    out.chmod(0o755)
    # outside the repository, with ruff's default rules: what a user who ejects gets
    proc = subprocess.run([ruff, "check", "--isolated", "--no-cache", "--output-format",
                           "concise", out.name], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- conformance


def _conformance_cases() -> list[Path]:
    if not CASES.is_dir():
        return []
    out = []
    for folder in ("run", "tx", "durable"):
        for p in sorted((CASES / folder).glob("*.kflow")):
            d = directives(p)
            if "resume-until-done" in d:
                continue  # needs a journal: the eject has none
            if not any(k.startswith("expect") for k in d):
                continue  # a module other cases import
            out.append(p)
    return out


def _check_effects(d: dict, state: Path) -> None:
    log = state / "effects.log"
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    if "expect-effects" in d:
        for line, count in json.loads(d["expect-effects"][0]).items():
            assert lines.count(line) == count, (line, lines)
    if "expect-effects-order" in d:
        assert lines == json.loads(d["expect-effects-order"][0])


@pytest.mark.parametrize("path", _conformance_cases(),
                         ids=lambda p: f"{p.parent.name}-{p.stem}")
def test_conformance_case_runs_ejected(path, tmp_path):
    d = directives(path)
    module = _eject(path, tmp_path / "case_eject.py")
    args = ["--input", d.get("input", ["{}"])[0]]
    if "workflow" in d:
        args += ["--workflow", d["workflow"][0]]
    signals = [tuple(s.split(" ", 1)) for s in d.get("signal", [])]
    for name, payload in signals:
        args += ["--signal", f"{name}={payload}"]
    state = tmp_path / "state"
    result = _run_eject(module, args, _env(paths=[CONF], KFLOW_CONF_STATE=state), tmp_path)
    status = d.get("expect-status", ["completed"])[0]
    assert result["status"] == status, result
    if "expect-output" in d:
        assert result["output"] == json.loads(d["expect-output"][0])
    if "expect-error-kind" in d:
        assert result["error"]["kind"] == d["expect-error-kind"][0], result
    _check_effects(d, state)
    if _kflow_available():
        work = tmp_path / "kflow"
        work.mkdir()
        run_args = args[:2] + (args[2:4] if "workflow" in d else [])
        durable = _run_kflow(path, run_args,
                             _env(paths=[CONF], KFLOW_CONF_STATE=work / "state"), work,
                             signals)
        _same_result(result, durable)


def test_conformance_cases_are_found():
    if not CASES.is_dir():
        pytest.skip("../shared/conformance not found: conformance runs of the eject skipped")
    names = {p.stem for p in _conformance_cases()}
    assert {"steps", "pure", "when", "try_else", "for_yield", "write_order"} <= names


# ----------------------------------------------------------------------------- fixtures


FEATURE_RUNS = [
    ("Quote", {"items": [{"sku": "apple", "qty": 3}, {"sku": "melon"}], "size": "small"}),
    ("Quote", {"items": [{"sku": "pear", "qty": 200}], "size": "large", "coupon": "X1"}),
    ("Quote", {"items": [{"sku": "kiwi"}]}),
    ("Budget", {"amount": 20}),
    ("Budget", {"amount": 95}),
    ("Budget", {"amount": 150}),
    ("Trip", {"items": ["a", "b", "c"]}),
    ("Trip", {"items": ["a", "b", "broken"]}),
    ("Trip", {"items": ["a"]}),
    ("Shapes", {"n": 5, "names": {"x": "ex", "y": "why"}}),
    ("Shapes", {"n": 1, "names": {}}),
    ("Fanout", {"x": 3}),
    ("Double", {"n": 21}),
    ("Batches", {"groups": [[1, 2], [], [3], [4, 5]]}),
    ("Batches", {"groups": [[1, 2], [5], [7]], "stop_at": 5}),
]


@pytest.fixture(scope="module")
def features_module(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("features")
    return _eject(FIXTURES / "features.kflow", folder / "features_eject.py")


@pytest.mark.parametrize("workflow, data", FEATURE_RUNS,
                         ids=[f"{w}-{i}" for i, (w, _) in enumerate(FEATURE_RUNS)])
def test_features_match_kflow_run(features_module, workflow, data, tmp_path):
    args = ["--workflow", workflow, "--input", json.dumps(data)]
    log_e, log_k = tmp_path / "eject.log", tmp_path / "kflow.log"
    ejected = _run_eject(features_module, args,
                         _env(paths=[FIXTURES], EMIT_FIXTURE_LOG=log_e), tmp_path)
    if not _kflow_available():
        pytest.skip("`kflow run` is not available to compare with")
    durable = _run_kflow(FIXTURES / "features.kflow", args,
                         _env(paths=[FIXTURES], EMIT_FIXTURE_LOG=log_k), tmp_path)
    _same_result(ejected, durable)
    effects = [p.read_text().splitlines() if p.exists() else [] for p in (log_e, log_k)]
    assert effects[0] == effects[1]


def test_saga_compensates_in_reverse(features_module, tmp_path):
    log = tmp_path / "eject.log"
    result = _run_eject(features_module,
                        ["--workflow", "Trip", "--input", '{"items": ["a", "b", "broken"]}'],
                        _env(paths=[FIXTURES], EMIT_FIXTURE_LOG=log), tmp_path)
    assert result["status"] == "failed" and result["error"]["kind"] == "StepFailed"
    assert log.read_text().splitlines() == [
        "book:a:a", "book:b:b", "book:broken:c", "cancel:bk-b", "cancel:bk-a"]


BREAKER = """\
@impl("breaker_nodes:always_down")
@effect(read)
@retry(attempts: 1)
@circuit_breaker(failures: 2, reset: 1h)
node Down(i: int) -> int

## Five calls to a service that is down: two real failures, then the circuit is open.
workflow Probe() -> list[str] {
  let kinds = for i in range(5) {
    try {
      let v = Down(i: i)
      yield "ok"
    } catch as e {
      yield e.kind
    }
  }
  return kinds
}
"""


def test_circuit_breaker_is_enforced_like_kflow_run(tmp_path):
    (tmp_path / "breaker.kflow").write_text(BREAKER, encoding="utf-8")
    (tmp_path / "breaker_nodes.py").write_text(
        "import os\n\ndef always_down(i):\n"
        "    with open(os.environ['CALLS'], 'a') as f:\n        f.write(f'{i}\\n')\n"
        "    raise ConnectionError('service down')\n", encoding="utf-8")
    module = _eject(tmp_path / "breaker.kflow", tmp_path / "breaker_eject.py")
    calls = tmp_path / "calls.log"
    ejected = _run_eject(module, [], _env(paths=[tmp_path], CALLS=calls), tmp_path)
    assert ejected["output"] == ["StepFailed", "StepFailed", "CircuitOpen", "CircuitOpen",
                                 "CircuitOpen"]
    assert calls.read_text().split() == ["0", "1"]  # an open circuit does not call
    if not _kflow_available():
        pytest.skip("`kflow run` is not available to compare with")
    durable = _run_kflow(tmp_path / "breaker.kflow", [],
                         _env(paths=[tmp_path], CALLS=tmp_path / "calls2.log"), tmp_path)
    assert durable["output"] == ejected["output"]


def test_workflow_call_retry_and_timeout_like_kflow_run(tmp_path):
    """`@retry`/`@timeout` on a workflow call: the eject retries or times out the whole
    call, as the VM does (the own case file holds the expected output)."""
    case = REPO / "tests" / "cases" / "run" / "workflow_call_retry_timeout.kflow"
    module = _eject(case, tmp_path / "wcr_eject.py")
    state = tmp_path / "state"
    state.mkdir()
    got = _run_eject(module, ["--workflow", "Main"],
                     _env(paths=[case.parent], KFLOW_CONF_STATE=state), tmp_path)
    assert got["output"] == {"retried": 2, "timed_out": "Timeout"}, got


def test_input_is_validated(features_module, tmp_path):
    proc = subprocess.run([sys.executable, str(features_module), "--workflow", "Double",
                           "--input", '{"n": "x"}'], env=_env(paths=[FIXTURES]),
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "does not match" in proc.stderr
    proc = subprocess.run([sys.executable, str(features_module), "--input", "{}"],
                          env=_env(paths=[FIXTURES]), capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 2 and "--workflow is required" in proc.stderr


def test_events_are_printed_on_request(features_module, tmp_path):
    proc = subprocess.run([sys.executable, str(features_module), "--workflow", "Fanout",
                           "--input", '{"x": 1}', "--events"], env=_env(paths=[FIXTURES]),
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"values": [1, 2], "doubled": 2, "waited": True}
    event = json.loads(proc.stderr.strip().splitlines()[-1])
    assert event == {"event": "fanout.echoed", "data": {"a": 1, "b": 2}}


# ----------------------------------------------------------------------------- examples


def _example_runs() -> list[tuple[str, str]]:
    runs = []
    for folder in sorted(p.parent for p in EXAMPLES.glob("*/*.kflow")):
        for sample in sorted(folder.glob("input*.json")):
            runs.append((folder.name, sample.name))
    return runs


from test_stdlib_sql import pg2pc  # noqa: E402,F401 - a 2PC-capable PostgreSQL


@pytest.fixture
def mock_api():
    sys.path.insert(0, str(EXAMPLES / "aggregate"))
    try:
        import mock_api as module
    finally:
        sys.path.pop(0)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = module.start(port)
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("example, sample", _example_runs(),
                         ids=[f"{e}-{s}" for e, s in _example_runs()])
def test_example_matches_kflow_run(example, sample, tmp_path, request):
    folder = EXAMPLES / example
    data = json.loads((folder / sample).read_text(encoding="utf-8"))
    if example == "aggregate":
        data["base_url"] = request.getfixturevalue("mock_api")
    if example == "pg_transfer":  # needs a server that allows prepared transactions
        url, second = request.getfixturevalue("pg2pc")
        data.update(from_db=url, to_db=second)
        request.getfixturevalue("monkeypatch").setenv(
            "KFLOW_PG_2PC_REGISTRY", str(tmp_path / "pg-2pc.json"))
    signals = []
    if example == "approval":
        signals = [("approval", (folder / "signal-approve.json").read_text().strip())]
    results = {}
    for side in ("eject", "kflow"):
        work = tmp_path / side
        shutil.copytree(folder, work, ignore=shutil.ignore_patterns(".data", ".kflow"))
        env = _env(KFLOW_EXAMPLE_DATA=work / ".data")
        kflow_file = work / f"{example}.kflow"
        args = ["--input", json.dumps(data)]
        if side == "eject":
            module = _eject(kflow_file, work / f"{example}_eject.py")
            for name, payload in signals:
                args += ["--signal", f"{name}={payload}"]
            results[side] = _run_eject(module, args, env, work)
        elif _kflow_available():
            results[side] = _run_kflow(kflow_file, args, env, work, signals)
    if "kflow" not in results:
        pytest.skip("`kflow run` is not available to compare with")
    _same_result(results["eject"], results["kflow"])
    if example == "etl":
        assert (tmp_path / "eject" / "report.md").read_text() == \
            (tmp_path / "kflow" / "report.md").read_text()


# ----------------------------------------------------------------------------- wrapping


def test_wrap_splits_at_the_closing_bracket_group():
    line = "    x = await NODE.call(" + ", ".join(f'"argument{i}"' for i in range(12)) + ")"
    lines = wrap_line(line)
    assert lines[0] == "    x = await NODE.call("
    assert lines[-1] == "    )"
    assert all(len(ln) <= 88 for ln in lines)
    compile("async def f():\n" + "\n".join(lines) + "\n", "<t>", "exec")


def test_wrap_leaves_subscripts_strings_and_comments_alone():
    long = "a" * 90
    assert wrap_line(f'    y = m["{long}"]') == [f'    y = m["{long}"]']
    assert wrap_line(f'    y = "{long}(x, y)"') == [f'    y = "{long}(x, y)"']
    comment = "    # " + "word " * 30
    assert all(ln.startswith("    # ") for ln in wrap_line(comment))
    assert len(wrap_line(comment)) > 1


def test_wrap_keeps_generators_without_trailing_comma():
    line = "    s = sep.join(text(x) for x in " + "very_long_name_" * 6 + ")"
    lines = wrap_line(line)
    assert not lines[1].rstrip().endswith(",")
    compile("\n".join(ln[4:] if i == 0 else ln for i, ln in enumerate(lines)), "<t>", "exec")


def test_wrap_skips_docstrings():
    text = '"""' + "d " * 60 + '\n"""\nx = 1'
    assert wrap(text) == text
