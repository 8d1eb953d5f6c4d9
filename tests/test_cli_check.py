"""`kflow check`: formats, exit statuses, usage errors, the Typer-free fast path."""

from __future__ import annotations

import json
import re
import sys
import textwrap
from pathlib import Path

import pytest

from kailash_dsl import __version__

CLEAN = textwrap.dedent("""\
    workflow Double(n: int) -> int {
      return n * 2
    }
""")
WARN = textwrap.dedent("""\
    workflow Double(n: int) -> int {
      let unused = n * 3
      return n * 2
    }
""")
SYNTAX = textwrap.dedent("""\
    workflow Broken(a: int) -> int {
      let x = a + 1
      let = 3
      return x
    }
""")
TYPE_ERROR = textwrap.dedent("""\
    @impl("conf_nodes:add")
    @effect(pure)
    node Add(a: int, b: int) -> int

    workflow Sum(x: int, label: str) -> int {
      let s = Add(a: x, b: label)
      return s
    }
""")


@pytest.fixture
def files(tmp_path):
    for name, text in {"clean.kflow": CLEAN, "warn.kflow": WARN, "syntax.kflow": SYNTAX,
                       "types.kflow": TYPE_ERROR}.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


# ------------------------------------------------------------------------ top level


def test_version(kflow, kflow_proc):
    assert kflow("--version").stdout == f"kflow {__version__}\n"
    r = kflow_proc("--version")
    assert (r.exit_code, r.stdout) == (0, f"kflow {__version__}\n")
    r = kflow_proc("--version", env={"KFLOW_NO_FAST_PATH": "1"})
    assert r.stdout.strip() == f"kflow {__version__}"


def test_check_help_has_examples(kflow):
    r = kflow("check", "--help")
    assert r.exit_code == 0
    for piece in ("Examples", "--format", "--explain", "kflow check orders.kflow",
                  "human | json | github | sarif"):
        assert piece in r.stdout, piece


# ------------------------------------------------------------------------- exit codes


def test_clean_file(kflow, files):
    r = kflow("check", "clean.kflow", cwd=files)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "All checks passed (1 file)"
    assert r.stderr == ""


def test_warnings_only_exit_zero(kflow, files):
    r = kflow("check", "warn.kflow", cwd=files)
    assert r.exit_code == 0, r.stdout
    assert "warning[W0001]" in r.stdout
    assert r.stdout.rstrip().endswith("All checks passed with 1 warning (1 file)")
    obj = json.loads(kflow("check", "warn.kflow", "--format", "json", cwd=files).stdout)
    assert (obj["errors"], obj["warnings"]) == (0, 1)


def test_syntax_error_human(kflow, files):
    r = kflow("check", "syntax.kflow", cwd=files)
    assert r.exit_code == 1
    assert r.stdout.startswith("error[E0001]: syntax error\n --> syntax.kflow:3:7\n")
    assert "3 |   let = 3\n  |       ^ `let` needs a name" in r.stdout
    assert r.stdout.rstrip().endswith("error: 1 error in 1 file")
    assert "\x1b[" not in r.stdout  # not a terminal: no colour


def test_type_error_all_formats(kflow, files, shared_dir):
    r = kflow("check", "types.kflow", "--format", "json", cwd=files)
    assert r.exit_code == 1
    obj = json.loads(r.stdout)
    assert set(obj) == {"files", "errors", "warnings", "diagnostics"}
    assert obj["files"] == 1 and obj["errors"] >= 1
    d = next(d for d in obj["diagnostics"] if d["code"] == "E0201")
    assert set(d) == {"code", "severity", "file", "line", "column", "end_line", "end_column",
                      "message", "help"}
    assert (d["file"], d["line"], d["severity"]) == ("types.kflow", 6, "error")

    gh = kflow("check", "types.kflow", "--format", "github", cwd=files)
    assert gh.exit_code == 1
    lines = gh.stdout.splitlines()
    assert len(lines) == len(obj["diagnostics"])
    for line, diag in zip(lines, obj["diagnostics"]):
        kind = "error" if diag["severity"] == "error" else "warning"
        assert line.startswith(f"::{kind} file=types.kflow,line={diag['line']},"
                               f"col={diag['column']},endLine={diag['end_line']},")
        assert f",title={diag['code']}::" in line
        assert "\n" not in line

    sarif = kflow("check", "types.kflow", "--format", "sarif", cwd=files)
    assert sarif.exit_code == 1
    log = json.loads(sarif.stdout)
    _validate_sarif(log, shared_dir)
    assert [r["ruleId"] for r in log["runs"][0]["results"]] == \
        [d["code"] for d in obj["diagnostics"]]


def _validate_sarif(log, shared_dir: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    path = shared_dir / "schemas" / "sarif-schema-2.1.0.json"
    if not path.is_file():
        pytest.skip(f"{path} not found: cannot validate SARIF")
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    errors = list(cls(schema, format_checker=cls.FORMAT_CHECKER).iter_errors(log))
    assert not errors, [e.message for e in errors[:5]]


def test_folder_checks_every_kflow_below(kflow, files):
    sub = files / "nested" / "deeper"
    sub.mkdir(parents=True)
    (sub / "more.kflow").write_text(CLEAN, encoding="utf-8")
    (files / "notes.txt").write_text("not kflow", encoding="utf-8")
    r = kflow("check", ".", "--format", "json", cwd=files)
    obj = json.loads(r.stdout)
    assert obj["files"] == 5
    assert r.exit_code == 1
    assert {d["code"] for d in obj["diagnostics"]} >= {"E0001", "E0201", "W0001"}


def test_multiple_paths_and_summary(kflow, files):
    r = kflow("check", "clean.kflow", "syntax.kflow", "warn.kflow", cwd=files)
    assert r.exit_code == 1
    assert r.stdout.rstrip().splitlines()[-1] == "error: 1 error, 1 warning in 3 files"


# ----------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("args, needle", [
    (["check", "clean.kflow", "--format", "xml"], "unknown --format `xml`"),
    (["check", "does-not-exist.kflow"], "no such file or directory: does-not-exist.kflow"),
    (["check", "clean.kflow", "nope/"], "no such file or directory: nope/"),
])
def test_usage_errors_are_one_line(kflow_proc, files, args, needle):
    r = kflow_proc(*args, cwd=files)
    assert r.exit_code == 2
    assert r.stdout == ""
    _no_traceback(r.stderr)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: "), r.stderr
    assert needle in r.stderr


@pytest.mark.parametrize("args", [["check"], ["check", "--bogus", "x.kflow"],
                                  ["check", "x.kflow", "--format"]])
def test_malformed_invocations_exit_2(kflow_proc, files, args):
    r = kflow_proc(*args, cwd=files)
    assert r.exit_code == 2
    _no_traceback(r.stderr)
    assert r.stderr.strip()


# ------------------------------------------------------------------------ fast path


@pytest.mark.parametrize("args", [
    ["check", "clean.kflow"],
    ["check", "syntax.kflow", "--format", "json"],
    ["check", "--format=github", "types.kflow", "warn.kflow"],
    ["check", "types.kflow", "--format", "sarif"],
    ["check", "warn.kflow", "--explain", "--format", "json"],
    ["check", "--", "clean.kflow"],
    ["check", "missing.kflow"],
    ["check", "clean.kflow", "--format", "yaml"],
])
def test_fast_path_matches_typer(kflow_proc, files, args):
    fast = kflow_proc(*args, cwd=files)
    slow = kflow_proc(*args, cwd=files, env={"KFLOW_NO_FAST_PATH": "1"})
    assert (fast.exit_code, fast.stdout, fast.stderr) == \
        (slow.exit_code, slow.stdout, slow.stderr)


def test_fast_path_imports_neither_typer_nor_rich(files):
    import subprocess

    code = ("import sys\nfrom kailash_dsl.launcher import main\n"
            "try:\n    main(['check', 'types.kflow', '--format', '{fmt}'])\n"
            "except SystemExit:\n    pass\n"
            "print('MODULES', sorted(m for m in ('typer', 'click', 'rich') if m in sys.modules),"
            " file=sys.stderr)\n")
    for fmt in ("human", "json", "github", "sarif"):
        proc = subprocess.run([sys.executable, "-c", code.format(fmt=fmt)], cwd=files,
                              capture_output=True, text=True, check=False)
        assert "MODULES []" in proc.stderr, (fmt, proc.stderr)


# -------------------------------------------------------------------------- explain


def test_explain_adds_explanations(kflow, files):
    r = kflow("check", "clean.kflow", "--format", "json", "--explain", cwd=files)
    obj = json.loads(r.stdout)
    assert isinstance(obj["explanations"], list)
    plain = json.loads(kflow("check", "clean.kflow", "--format", "json", cwd=files).stdout)
    assert "explanations" not in plain


def test_explain_transaction_pattern(kflow, tmp_path):
    (tmp_path / "tx.kflow").write_text(textwrap.dedent("""\
        @impl("m:charge")
        @effect(write, resource: "payments")
        @compensate(Refund)
        node Charge(amount: float) -> { charge_id: str }

        @impl("m:refund")
        @effect(write, resource: "payments")
        node Refund(charge_id: str) -> null

        @impl("m:book")
        @effect(write, resource: "shipping")
        node Book(order_id: str) -> { label: str }

        workflow Order(id: str, total: float) -> str {
          transaction {
            let charge = Charge(amount: total)
            let label = Book(order_id: id)
          }
          return "${label.label} ${charge.charge_id}"
        }
    """), encoding="utf-8")
    r = kflow("check", "tx.kflow", "--format", "json", "--explain", cwd=tmp_path)
    assert r.exit_code == 0, r.stdout
    obj = json.loads(r.stdout)
    assert obj["explanations"], obj
    assert any("saga" in e["text"] for e in obj["explanations"])
    assert all(e["file"] == "tx.kflow" and e["line"] >= 1 for e in obj["explanations"])
    human = kflow("check", "tx.kflow", "--explain", cwd=tmp_path).stdout
    assert "saga" in human
    assert human.rstrip().endswith("All checks passed (1 file)")


# ---------------------------------------------------------------------- conformance


def _check_cases(shared: Path):
    return sorted((shared / "conformance" / "cases" / "check").rglob("*.kflow"))


def _expectation(path: Path):
    m = re.search(r"^#\s*check:\s*(.+)$", path.read_text(encoding="utf-8"), re.MULTILINE)
    return m.group(1).strip() if m else None


def test_conformance_check_cases(kflow, shared_dir):
    """Every `# check:` case of ../shared/conformance, through the CLI's json output."""
    failures = []
    cases = [c for c in _check_cases(shared_dir) if _expectation(c)]
    assert cases
    for case in cases:
        spec = _expectation(case)
        r = kflow("check", "--format", "json", str(case))
        obj = json.loads(r.stdout)
        got_err = sorted(f"{d['code']}@{d['line']}" for d in obj["diagnostics"]
                         if d["severity"] == "error")
        got_warn = {f"{d['code']}@{d['line']}" for d in obj["diagnostics"]
                    if d["severity"] == "warning"}
        if spec == "ok":
            ok = r.exit_code == 0 and not got_err
        else:
            want = spec.split()
            want_err = sorted(w for w in want if w.startswith("E"))
            want_warn = {w for w in want if w.startswith("W")}
            ok = got_err == want_err and want_warn <= got_warn and \
                r.exit_code == (1 if want_err else 0)
        if not ok:
            failures.append(f"{case.name}: want {spec}, got {got_err} {sorted(got_warn)} "
                            f"(exit {r.exit_code})")
    assert not failures, "\n".join(failures)
