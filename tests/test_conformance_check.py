"""`# check:` cases: the shared conformance suite's and the project's own.

* ../shared/conformance/cases/check — one test per case file (id = its path below
  cases/check); skipped, visibly, when ../shared is absent (a user's clone);
* tests/cases/check — the project's own cases, in the same directive format, at least
  one per diagnostic code the checker produces, plus tricky valid programs.

Cases are checked in-process with the runner's comparison (exact errors as code@line,
warnings at least), which keeps the file fast; one test drives the real command line.
Every run/durable/tx case and every example must also check without errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from kailash_dsl.compiler.api import check_paths

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED = Path(os.environ.get("KFLOW_SHARED", REPO.parent / "shared"))
SHARED_CHECK = SHARED / "conformance" / "cases" / "check"
OWN_CHECK = HERE / "cases" / "check"


def directive(path: Path, key: str) -> str | None:
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if s.startswith("# "):
            k, _, v = s[2:].partition(":")
            if k.strip() == key:
                return v.strip()
    return None


def cases(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.kflow") if directive(p, "check") is not None)


def run_check_case(case: Path) -> None:
    """The conformance runner's `run_check`, in-process."""
    spec = directive(case, "check")
    result = check_paths([str(case)])
    assert result.usage_error is None
    diags = result.diagnostics
    got_errors = Counter(f"{d.code}@{d.span.line}" for d in diags if d.is_error)
    got_all = Counter(f"{d.code}@{d.span.line}" for d in diags)
    detail = "\n".join(f"  {d.span}: {d.severity} {d.code}: {d.message}" for d in diags)
    if spec == "ok":
        assert not got_errors, f"expected no errors, got:\n{detail}"
        return
    wanted = Counter(spec.split())
    wanted_errors = Counter({k: v for k, v in wanted.items() if k.startswith("E")})
    wanted_warnings = Counter({k: v for k, v in wanted.items() if k.startswith("W")})
    assert got_errors == wanted_errors, (
        f"errors: expected {sorted(wanted_errors.elements())}, "
        f"got {sorted(got_errors.elements())}\n{detail}")
    missing = wanted_warnings - got_all
    assert not missing, f"warnings missing: {sorted(missing.elements())}\n{detail}"
    for d in diags:
        assert d.message, f"{d.code} has no message"
        assert d.span.file.endswith(".kflow")


def _shared_params():
    if not SHARED_CHECK.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(
            reason=f"{SHARED_CHECK} not found: shared conformance cases unavailable"),
            id="no-shared")]
    return [pytest.param(p, id=str(p.relative_to(SHARED_CHECK))) for p in cases(SHARED_CHECK)]


@pytest.mark.parametrize("case", _shared_params())
def test_shared_check_case(case: Path) -> None:
    run_check_case(case)


@pytest.mark.parametrize("case", [pytest.param(p, id=str(p.relative_to(OWN_CHECK)))
                                  for p in cases(OWN_CHECK)])
def test_own_check_case(case: Path) -> None:
    run_check_case(case)


def test_own_cases_cover_every_check_code() -> None:
    """At least one own case per check-time diagnostic code the checker produces."""
    from kailash_dsl.diagnostics import CODES

    want = {c for c in CODES if c[0] in "EW" and c not in ("E0601",)}
    seen: set[str] = set()
    for p in cases(OWN_CHECK):
        spec = directive(p, "check")
        seen.update(tok.split("@")[0] for tok in spec.split() if "@" in tok)
    seen.add("E0001")  # syntax errors: the shared suite and the parser's own tests
    assert want <= seen, f"codes without an own case: {sorted(want - seen)}"


def _clean_params():
    out = []
    groups = [("shared", SHARED / "conformance" / "cases" / g) for g in ("run", "durable", "tx")]
    groups.append(("examples", REPO / "examples"))
    groups.append(("stdlib", REPO / "kailash_dsl" / "stdlib"))
    for label, root in groups:
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*.kflow")):
            out.append(pytest.param(p, id=f"{label}/{p.relative_to(root)}"))
    return out or [pytest.param(None, marks=pytest.mark.skip(reason="no programs found"),
                                id="none")]


@pytest.mark.parametrize("program", _clean_params())
def test_program_checks_without_errors(program: Path) -> None:
    result = check_paths([str(program)])
    errors = [f"{d.span}: {d.code} {d.message}" for d in result.diagnostics if d.is_error]
    assert not errors, "\n".join(errors)


def test_command_line_json_and_exit_codes(tmp_path: Path) -> None:
    """The real `kflow check --format json`, as the conformance runner calls it."""
    bad = OWN_CHECK / "err_E0207_extra_field.kflow"
    good = OWN_CHECK / "ok_flow.kflow"
    cmd = [sys.executable, "-m", "kailash_dsl", "check", "--format", "json"]
    proc = subprocess.run(cmd + [str(bad), str(good)], check=False, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["files"] == 2
    assert report["errors"] == 3
    assert {d["code"] for d in report["diagnostics"] if d["severity"] == "error"} == {"E0207"}
    for d in report["diagnostics"]:
        assert set(d) >= {"code", "severity", "file", "line", "column", "end_line",
                          "end_column", "message", "help"}
    proc = subprocess.run(cmd + [str(good)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(cmd + [str(tmp_path / "missing.kflow")], check=False, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
