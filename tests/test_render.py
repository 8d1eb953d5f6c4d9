"""Renderers on hand-built diagnostics: exact human layout, github lines, SARIF schema."""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from kailash_dsl import render
from kailash_dsl.diagnostics import CODES, Label, error, warning
from kailash_dsl.grammar.ast import Span

SOURCE = textwrap.dedent("""\
    @impl("conf_nodes:add")
    @effect(pure)
    node Add(a: int, b: int) -> int

    workflow Sum(x: int, label: str) -> int {
      let s = Add(a: x, b: label)
      return s
    }
""")


@pytest.fixture
def src(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sum.kflow").write_text(SOURCE, encoding="utf-8")
    return "sum.kflow"


def mismatch(path):
    return error("E0201", "expected `int`, found `str`", Span(path, 6, 24, 6, 29),
                 help="convert it: `int(label)`",
                 labels=(Label(Span(path, 3, 18, 3, 24), "parameter `b` declared here"),))


def test_human_exact_layout(src):
    out = render.render_human([mismatch(src)], 1)
    assert out == textwrap.dedent("""\
        error[E0201]: mismatched types
         --> sum.kflow:6:24
          |
        3 | node Add(a: int, b: int) -> int
          |                  ------ parameter `b` declared here
        ...
        6 |   let s = Add(a: x, b: label)
          |                        ^^^^^ expected `int`, found `str`
          |
          = help: convert it: `int(label)`

        error: 1 error in 1 file""")


def test_human_title_only_when_message_adds_nothing(src):
    d = warning("W0001", "unused binding", Span(src, 6, 7, 6, 8))
    out = render.render_human([d], 1)
    assert "warning[W0001]: unused binding" in out
    assert re.search(r"\|\s+\^$", out, re.MULTILINE), out  # caret with no repeated message
    assert out.endswith("All checks passed with 1 warning (1 file)")


def test_summary_lines():
    e = error("E0101", "unknown name `y`", Span("<x>", 1, 1, 1, 2))
    w = warning("W0001", "unused", Span("<x>", 1, 1, 1, 2))
    assert render.summary_line([], 3) == "All checks passed (3 files)"
    assert render.summary_line([], 1) == "All checks passed (1 file)"
    assert render.summary_line([e, e, w], 3) == "error: 2 errors, 1 warning in 3 files"
    assert render.summary_line([e], 2) == "error: 1 error in 2 files"
    assert render.summary_line([w, w], 2) == "All checks passed with 2 warnings (2 files)"


def test_human_multiline_span_uses_a_rail(src):
    d = error("E0501", "`Sum` can end without `return`", Span(src, 5, 1, 8, 2))
    out = render.render_human([d], 1, summary=False)
    assert out == textwrap.dedent("""\
        error[E0501]: missing return
         --> sum.kflow:5:1
          |
        5 | / workflow Sum(x: int, label: str) -> int {
        6 | |   let s = Add(a: x, b: label)
        7 | |   return s
        8 | | }
          | |_^ `Sum` can end without `return`""")


def test_human_multiline_span_starting_mid_line(src):
    d = error("E0201", "bad", Span(src, 5, 41, 6, 9))
    out = render.render_human([d], 1, summary=False)
    lines = out.splitlines()
    assert lines[3] == "5 |   workflow Sum(x: int, label: str) -> int {"
    assert lines[4] == "  |  _________________________________________^"
    assert lines[5] == "6 | |   let s = Add(a: x, b: label)"
    assert lines[6] == "  | |________^ bad"  # last character: column 8


def test_human_several_labels_on_one_line(src):
    d = error("E0203", "unknown argument `c`", Span(src, 6, 21, 6, 22),
              labels=(Label(Span(src, 6, 11, 6, 14), "calls `Add`"),
                      Label(Span(src, 6, 15, 6, 16), "first")))
    out = render.render_human([d], 1, summary=False)
    assert out.splitlines()[3:] == [
        "6 |   let s = Add(a: x, b: label)",
        "  |           --- -     ^ unknown argument `c`",
        "  |           |   |",
        "  |           |   first",
        "  |           calls `Add`",
    ]


def test_human_tolerates_missing_file_and_builtin_span():
    d = error("E0104", "cannot find `./nope.kflow`", Span("missing/x.kflow", 3, 1, 3, 5),
              help="check the path")
    b = error("E0102", "no such node", Span("<builtin>", 0, 0, 0, 0))
    out = render.render_human([d, b], 1)
    assert "--> missing/x.kflow:3:1" in out
    assert "= cannot find `./nope.kflow`" in out
    assert "= help: check the path" in out
    assert "error[E0102]" in out


def test_human_span_past_end_of_file_and_zero_width(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.kflow").write_text("workflow W() {\n", encoding="utf-8")
    d = error("E0001", "unclosed `{`", Span("t.kflow", 2, 1, 2, 1))
    far = error("E0001", "far away", Span("t.kflow", 99, 1, 99, 2))
    out = render.render_human([d, far], 1, summary=False)
    assert "2 |\n  | ^ unclosed `{`" in out
    assert "--> t.kflow:99:1" in out and "far away" in out


def test_human_tabs_and_wide_characters_align(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.kflow").write_text('\tlet 名前 = x\n', encoding="utf-8")
    d = error("E0101", "unknown name `x`", Span("t.kflow", 1, 11, 1, 12))
    lines = render.render_human([d], 1, summary=False).splitlines()
    assert lines[3] == "1 |     let 名前 = x"
    # Wide characters take two terminal columns, so the caret sits two further right.
    width = sum(2 if ch in "名前" else 1 for ch in lines[3][:lines[3].index("x")])
    assert lines[4].index("^") == width


def test_human_control_characters_are_neutralised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.kflow").write_text('let a = "\x1b[31m"\n', encoding="utf-8")
    d = error("E0001", "bad", Span("t.kflow", 1, 1, 1, 4))
    assert "\x1b" not in render.render_human([d], 1)


def test_human_color_only_when_asked(src):
    plain = render.render_human([mismatch(src)], 1, color=False)
    colored = render.render_human([mismatch(src)], 1, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[" in colored
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == plain


def test_want_color(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert render.want_color(Tty())
    assert not render.want_color(object())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not render.want_color(Tty())


def test_human_notes_and_multiline_help(src):
    d = error("E0401", "`Charge` cannot be undone", Span(src, 6, 11, 6, 14),
              help="add `@compensate(Refund)` to `Charge`\nor make it the last write",
              notes=("saga: every write step but the last needs @compensate",))
    out = render.render_human([d], 1, summary=False)
    assert out.splitlines()[-3:] == [
        "  = help: add `@compensate(Refund)` to `Charge`",
        "          or make it the last write",
        "  = note: saga: every write step but the last needs @compensate",
    ]


def test_human_explanations(src):
    out = render.render_human([], 1, explanations=[(Span(src, 5, 1, 8, 2),
                                                     "transaction: saga\nbecause reasons")])
    assert "explain: transaction: saga" in out
    assert "5 | workflow Sum" in out
    assert "= note: because reasons" in out
    assert out.endswith("All checks passed (1 file)")


def test_human_label_in_another_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.kflow").write_text('import "./b.kflow" as b\n', encoding="utf-8")
    (tmp_path / "b.kflow").write_text('import "./a.kflow" as a\n', encoding="utf-8")
    d = error("E0104", "import cycle: a.kflow → b.kflow → a.kflow",
              Span("a.kflow", 1, 8, 1, 19),
              labels=(Label(Span("b.kflow", 1, 8, 1, 19), "which imports this file"),))
    out = render.render_human([d], 1, summary=False)
    assert " ::: b.kflow:1:8" in out
    assert "-----------" in out


# ----------------------------------------------------------------------------- json


def test_json_schema_and_explanations(src):
    obj = json.loads(render.render_json([mismatch(src)], 2))
    assert obj == {"files": 2, "errors": 1, "warnings": 0, "diagnostics": [{
        "code": "E0201", "severity": "error", "file": "sum.kflow", "line": 6, "column": 24,
        "end_line": 6, "end_column": 29, "message": "expected `int`, found `str`",
        "help": "convert it: `int(label)`"}]}
    obj = json.loads(render.render_json([], 1, [(Span(src, 5, 1, 8, 2), "saga")]))
    assert obj["explanations"] == [{"file": "sum.kflow", "line": 5, "column": 1,
                                    "end_line": 8, "end_column": 2, "text": "saga"}]


# ---------------------------------------------------------------------------- github


def test_github_lines(src):
    w = warning("W0001", "unused binding `s`", Span(src, 6, 7, 6, 8))
    out = render.render_github([mismatch(src), w], 1).split("\n")
    assert out == [
        ("::error file=sum.kflow,line=6,col=24,endLine=6,endColumn=28,title=E0201::"
         "expected `int`, found `str`%0Ahelp: convert it: `int(label)`"),
        ("::warning file=sum.kflow,line=6,col=7,endLine=6,endColumn=7,title=W0001::"
         "unused binding `s`"),
    ]


def test_github_escaping():
    d = error("E0201", "100% wrong\r\nsecond line", Span("dir,x/a:b.kflow", 2, 3, 4, 5))
    (line,) = render.render_github([d], 1).split("\n")
    assert line == ("::error file=dir%2Cx/a%3Ab.kflow,line=2,col=3,endLine=4,endColumn=4,"
                    "title=E0201::100%25 wrong%0D%0Asecond line")


def test_github_relative_paths(src, tmp_path):
    d = error("E0101", "x", Span(str(tmp_path / "sum.kflow"), 1, 1, 1, 2))
    assert render.render_github([d], 1).startswith("::error file=sum.kflow,line=1,")


# ----------------------------------------------------------------------------- sarif


@pytest.fixture(scope="module")
def sarif_validator():
    from pathlib import Path

    jsonschema = pytest.importorskip("jsonschema")
    path = Path(__file__).resolve().parents[2] / "shared" / "schemas" / "sarif-schema-2.1.0.json"
    if not path.is_file():
        pytest.skip("../shared/schemas/sarif-schema-2.1.0.json not found: cannot validate SARIF")
    schema = json.loads(path.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _sarif_sample(src):
    return [
        mismatch(src),
        warning("W0001", "unused binding `s`", Span(src, 6, 7, 6, 8), notes=("a note",)),
        error("E0501", "no return", Span(src, 5, 1, 8, 2)),
        error("E0104", "cycle", Span("/abs/elsewhere/x.kflow", 1, 1, 1, 2)),
        error("E0102", "builtin", Span("<builtin>", 0, 0, 0, 0)),
    ]


def test_sarif_validates_against_schema(src, sarif_validator):
    log = json.loads(render.render_sarif(_sarif_sample(src), 2))
    errors = sorted(sarif_validator.iter_errors(log), key=str)
    assert not errors, "\n".join(e.message for e in errors[:5])
    empty = json.loads(render.render_sarif([], 0))
    assert not list(sarif_validator.iter_errors(empty))


def test_sarif_content(src):
    log = json.loads(render.render_sarif(_sarif_sample(src), 2))
    assert log["version"] == "2.1.0"
    run = log["runs"][0]
    driver = run["tool"]["driver"]
    assert driver["name"] == "kflow"
    assert driver["informationUri"].startswith("https://")
    rules = driver["rules"]
    assert [r["id"] for r in rules] == list(CODES)
    for r in rules:
        assert r["shortDescription"]["text"] == CODES[r["id"]][0]
        assert r["fullDescription"]["text"] == CODES[r["id"]][1]
        assert r["defaultConfiguration"]["level"] in ("error", "warning")
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]*", r["name"])
    first = run["results"][0]
    assert first["ruleId"] == "E0201"
    assert rules[first["ruleIndex"]]["id"] == "E0201"
    assert first["level"] == "error"
    loc = first["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {"uri": "sum.kflow", "uriBaseId": "%SRCROOT%"}
    assert loc["region"] == {"startLine": 6, "startColumn": 24, "endLine": 6, "endColumn": 29}
    assert first["properties"]["help"] == "convert it: `int(label)`"
    assert "help: convert it" in first["message"]["text"]
    assert first["relatedLocations"][0]["message"]["text"] == "parameter `b` declared here"
    assert run["results"][1]["level"] == "warning"
    assert run["results"][3]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] \
        == "file:///abs/elsewhere/x.kflow"


def test_render_dispatch_and_unknown_format(src):
    for fmt in render.FORMATS:
        assert isinstance(render.render(fmt, [mismatch(src)], 1), str)
    with pytest.raises(ValueError):
        render.render("xml", [], 1)


def test_machine_formats_do_not_import_rich(src):
    import subprocess
    import sys

    code = ("import sys; from kailash_dsl import render; from kailash_dsl.diagnostics import "
            "error; from kailash_dsl.grammar.ast import Span; d=[error('E0101','x',"
            "Span('a',1,1,1,2))]; [render.render(f, d, 1) for f in ('json','github','sarif')];"
            "render.render_human(d, 1); print('rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
