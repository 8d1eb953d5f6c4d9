"""The shared conformance cases for running (run/, durable/, tx/), one test per file.

Each case runs through the official runner's own `run_case` (../shared/conformance/run.py)
against `python -m kailash_dsl`, so a failure names the file and says what differed.
Skips visibly when ../shared is absent (a user's clone).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
CONF = SHARED / "conformance"
GROUPS = ("run", "durable", "tx")


def _cases() -> list:
    if not (CONF / "run.py").exists():
        return [pytest.param(None, marks=pytest.mark.skip(
            reason="../shared not found: conformance cases unavailable"), id="no-shared")]
    out = []
    for group in GROUPS:
        for p in sorted((CONF / "cases" / group).rglob("*.kflow")):
            out.append(pytest.param(p, id=str(p.relative_to(CONF / "cases"))))
    return out


@pytest.fixture(scope="module")
def runner():
    spec = importlib.util.spec_from_file_location("kflow_conformance_runner", CONF / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("case", _cases())
def test_conformance_run_case(case, runner, monkeypatch):
    spec = runner.directives(case)
    if "skip" in spec or not (spec.keys() - {"workflow"}):
        pytest.skip("a helper module imported by other cases")
    monkeypatch.setenv("KFLOW", f"{sys.executable} -m kailash_dsl")
    with tempfile.TemporaryDirectory(prefix="kflow-conf-") as tmp:
        cwd = Path(tmp)
        env = dict(os.environ, KFLOW_CONF_STATE=str(cwd / "state"),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(CONF),
                                                            os.environ.get("PYTHONPATH")])))
        try:
            if "check" in spec:
                runner.run_check(case, spec["check"][0], env, cwd)
            runner.run_case(case, spec, env, cwd)
        except runner.Failure as exc:
            pytest.fail(f"{case.name}: {exc}")
