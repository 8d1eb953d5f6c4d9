"""`kflow fmt`: canonical, comment-preserving, idempotent, meaning-preserving.

Every `.kflow` file in the repository and in ../shared/conformance is formatted twice:
the second pass must change nothing, and `format_source` itself re-parses its output
and compares ASTs (`ast.same_shape`) and comments, raising if they differ. Messy inputs
are pinned with syrupy snapshots; hypothesis injects comments and line breaks into real
files and builds random expressions to exercise parenthesisation.
"""

from __future__ import annotations

import io
import random
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kailash_dsl.format import (
    _SCAN,
    WIDTH,
    FormatError,
    FormatSyntaxError,
    format_source,
    run_fmt,
)
from kailash_dsl.grammar import ast as A
from kailash_dsl.grammar.parser import parse

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SKIP = {"node_modules", ".git", ".venv", "build", "dist"}


def _repo_files() -> list[Path]:
    return sorted(p for p in REPO.rglob("*.kflow") if not SKIP & set(p.parts))


def _conformance_files() -> list[Path]:
    root = SHARED / "conformance"
    return sorted(root.rglob("*.kflow")) if root.is_dir() else []


def _fmt(text: str, path: str = "t.kflow") -> str:
    return format_source(text, path)


def _assert_canonical(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    module, diags = parse(text, str(path))
    if module is None or any(d.is_error for d in diags):
        with pytest.raises(FormatSyntaxError) as exc:
            _fmt(text, str(path))
        assert exc.value.diagnostic is not None
        assert re.match(r".+:\d+:\d+: E\d{4} ", exc.value.message)
        return
    once = _fmt(text, str(path))
    again, _ = parse(once, str(path))
    assert again is not None and A.same_shape(module, again)
    assert sorted(c.text.rstrip() for c in module.comments) == \
        sorted(c.text.rstrip() for c in again.comments)
    assert _fmt(once, str(path)) == once, f"fmt is not idempotent on {path}"
    # only an unbreakable string or a comment may push a line past the limit
    assert all(len(line) <= WIDTH or '"' in line or "#" in line for line in once.splitlines()), \
        "a line is longer than the limit"


@pytest.mark.parametrize("path", _repo_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_repo_files_idempotent_and_meaning_preserving(path: Path) -> None:
    _assert_canonical(path)


def test_conformance_files_idempotent_and_meaning_preserving() -> None:
    files = _conformance_files()
    if not files:
        pytest.skip("../shared/conformance not found: conformance .kflow files not checked")
    for path in files:
        _assert_canonical(path)


def test_repo_has_kflow_files() -> None:
    assert _repo_files(), "expected the stdlib and examples to contain .kflow files"


# ----------------------------------------------------------------------- snapshots

MESSY = {
    "declarations": '''\
# file header: kept, with the blank line after it

import std.http
import std.sql   as db   # the database
import "./lib.kflow"  as lib
type Item {sku:str,qty:int=1}   # one line stays one line
type Order {
  id: str    # the id
  items: list[Item]
  coupon: str? = null
}
enum Status {pending,paid,failed}
const TAX=0.2
const   LIMIT : int = 1_000
## Charge a card.
## Returns the processor's charge id.
@impl("shop.payments:charge") @effect(write, resource: "payments")
@retry(attempts: 3, backoff: exponential(200ms, max: 5s))
node Charge(amount: float, currency: str = "USD") -> { charge_id: str, status: Status }
@impl("shop.payments:refund")
node Refund(charge_id: str, amount_in_the_smallest_currency_unit: int, reason: str = "requested") -> { ok: bool }
''',
    "workflow": '''\
workflow ProcessOrder(order: Order, send_mail: bool = true) -> { order_id: str, charge_id: str } {
  let valid = Validate(order: order)
  if not valid.ok { fail "invalid order ${order.id}: ${valid.reason}" }
  else if valid.score<0.5 { fail Suspicious("score ${valid.score}") } else {
    # all good
  }
  let stock = inventory.Reserve(items: order.items)   # independent of `risk`:
  let risk = fraud.Score(order: order)                # the two run concurrently


  transaction saga { let charge = payments.Charge(amount: order.total) ; let label = shipping.Book(order_id: order.id) }
  @retry(attempts: 5) @timeout(30s)
  let mail = notify.Send(to: order.email, body: "paid") when send_mail
  @concurrency(4)
  let lines = for item in order.items {
    let p = pricing.Quote(sku: item.sku)
    yield p.price*item.qty
  }
  try { Risky() } catch Timeout , StepFailed as e { Log(message: e.message) } catch { checkpoint }
  parallel { A() ; B() }
  let a: Approval? = wait "approval" timeout 24h
  sleep 10m
  emit "order.paid" {order_id: order.id, total: sum(lines), lines: lines, currency: "EUR", note: "a long note"}
  return {order_id: order.id, charge_id: charge.charge_id}
}
''',
    "expressions": '''\
workflow Exprs(xs: list[int], m: map[int], s: str?) -> json {
  let a = (1+2)*3
  let b = 1+(2*3)
  let c = -(-1)
  let d = not (a==b and b!=c)
  let e = (s ?? "x") ?? "y"
  let f = s ?? ("x" ?? "y")
  let g = a - (b - c)
  let h = [x*2 for x in xs if x>1]
  let i = if a>b then "big" else if a==b then "same" else "small"
  let j = m["k"] + len(xs)//2 % 3
  let k = s?.upper ?? ""
  let l = {"k": 1, "v": [1,2,3]}
  let n = try Fetch(url: "https://example.com") else Cached(key: "k")
  let long = ComputeSomething(first_argument: a, second_argument: b, third: [1, 2, 3], fourth: {x: 1, y: 2})
  let nested = Outer(config: {name: "a fairly long name here", retries: 3, backoff: "exponential", limits: {max: 10, min: 1}})
  let text = """
    Dear ${name},
      indented line
  """
  return {a: a, b: b}
}
''',
    "comments": '''\
## Doc of A.
node A(x: int) -> int   # trailing on a node

# a floating comment

# directly above B
node B(
  x: int,   # the x
  # before y
  y: int    # the y
) -> int

workflow W() -> int {   # after the brace
  # first in block
  let r = A(x: 1)   # after a statement

  let rec = {   # opener line
    a: 1,   # field a
    # before b
    b: 2,
  }   # after the closer
  return r   # the end
  # last in block
}   # after the workflow
# end of file
''',
}


@pytest.mark.parametrize("name", sorted(MESSY))
def test_messy_inputs_snapshot(name: str, snapshot) -> None:
    out = _fmt(MESSY[name])
    assert _fmt(out) == out
    assert out == snapshot


# ----------------------------------------------------------------------- style rules

def test_record_literal_one_line_when_it_fits_else_one_field_per_line() -> None:
    short = "workflow W() -> json {\n  return {a: 1,\n    b: 2}\n}\n"
    assert "  return {a: 1, b: 2}\n" in _fmt(short)
    fields = ", ".join(f"field_{i}: {i}" for i in range(12))
    long = f"workflow W() -> json {{\n  return {{{fields}}}\n}}\n"
    out = _fmt(long)
    assert "  return {\n    field_0: 0,\n" in out
    assert "    field_11: 11,\n  }\n" in out  # trailing comma


def test_exactly_100_columns_fits_101_breaks() -> None:
    def src(n: int) -> str:
        return f'const X = F(a: "{"x" * n}")\n'
    base = len('const X = F(a: "")')
    fits = _fmt(src(WIDTH - base))
    assert fits.count("\n") == 1 and len(fits.rstrip("\n")) == WIDTH
    assert _fmt(src(WIDTH - base + 1)).count("\n") == 3


def test_spaces_around_binary_operators_and_one_statement_per_line() -> None:
    out = _fmt("workflow W(a: int) -> int {\n  let x = a*2+1; let y = x//3%2\n  return x-y\n}\n")
    assert "  let x = a * 2 + 1\n  let y = x // 3 % 2\n  return x - y\n" in out


def test_attributes_one_per_line_and_blank_line_between_declarations() -> None:
    out = _fmt('@impl("m:f") @effect(pure)\nnode F() -> int\nnode G() -> int\n')
    assert out == '@impl("m:f")\n@effect(pure)\nnode F() -> int\n\nnode G() -> int\n'


def test_doc_comments_stay_above_their_declaration() -> None:
    src = '## Doc line one.\n## Doc line two.\n@impl("m:f")\nnode F() -> int\n'
    out = _fmt(src)
    assert out == src
    module, _ = parse(out, "t.kflow")
    assert module.decls[0].doc == "Doc line one.\nDoc line two."


def test_comments_stay_on_their_lines() -> None:
    src = MESSY["comments"]
    out = _fmt(src)
    for comment in re.findall(r"#[^\n]*", src):
        line_before = next(ln for ln in src.splitlines() if comment in ln)
        line_after = next(ln for ln in out.splitlines() if comment in ln)
        code_before = line_before.split("#", 1)[0].strip()
        code_after = line_after.split("#", 1)[0].strip()
        if code_before:  # an end-of-line comment stays at the end of the same code
            assert code_after.rstrip(",") == code_before.rstrip(",").replace("  ", " ") \
                or code_after.startswith(code_before.split("(")[0]), (comment, line_after)
        else:
            assert not code_after, (comment, line_after)


def test_literals_are_kept_as_written() -> None:
    src = 'const A = 1_000\nconst B = "\\u{1F600} ${A}"\nconst C = 2.50e3\nconst D = 90s\n'
    assert _fmt(src) == src


def test_long_string_is_kept_verbatim() -> None:
    src = 'workflow W() -> str {\n    let t = """\n  two\n    four  \n"""\n  return t\n}\n'
    out = _fmt(src)
    assert '  let t = """\n  two\n    four  \n"""\n' in out


def test_blank_lines_in_blocks_collapse_to_one() -> None:
    out = _fmt("workflow W() -> int {\n\n  let a = 1\n\n\n\n  return a\n\n}\n")
    assert out == "workflow W() -> int {\n  let a = 1\n\n  return a\n}\n"


def test_empty_input_and_comment_only_input() -> None:
    assert _fmt("") == ""
    assert _fmt("\n\n") == ""
    assert _fmt("# only a comment   \n\n\n# another\n") == "# only a comment\n\n# another\n"


def test_parentheses_follow_precedence() -> None:
    src = MESSY["expressions"]
    out = _fmt(src)
    for expected in ("let a = (1 + 2) * 3", "let b = 1 + 2 * 3", "let c = -(-1)",
                     "let d = not (a == b and b != c)", 'let e = (s ?? "x") ?? "y"',
                     'let f = s ?? "x" ?? "y"', "let g = a - (b - c)",
                     "let h = [x * 2 for x in xs if x > 1]"):
        assert expected in out, expected


def test_syntax_error_refuses_with_the_diagnostic() -> None:
    with pytest.raises(FormatSyntaxError) as exc:
        _fmt("workflow W() -> int {\n  let = 3\n}\n", "bad.kflow")
    assert exc.value.message.startswith("bad.kflow:2:7: E0001 ")
    assert exc.value.diagnostic.code == "E0001"


def test_misplaced_statement_attribute_refuses_instead_of_dropping_it() -> None:
    src = "workflow W() -> int {\n  @retry(attempts: 2)\n  if true {\n    return 1\n  }\n  return 2\n}\n"
    with pytest.raises(FormatError):
        _fmt(src)


def test_meaning_check_guards_the_output(monkeypatch) -> None:
    import kailash_dsl.format as F

    monkeypatch.setattr(F._Printer, "module", lambda self: "const A = 2\n")
    with pytest.raises(FormatError) as exc:
        F.format_source("const A = 1\n", "x.kflow")
    assert "meaning" in exc.value.message


# ----------------------------------------------------------------------- properties

def _long_string_lines(text: str) -> set[int]:
    out: set[int] = set()
    for m in _SCAN.finditer(text):
        if m.lastgroup == "ls":
            out.update(range(text.count("\n", 0, m.start()) + 1,
                             text.count("\n", 0, m.end()) + 1))
    return out


def _corpus() -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in _repo_files() + _conformance_files()]
    texts += list(MESSY.values())
    return [t for t in texts if (m := parse(t, "c.kflow"))[0] is not None
            and not any(d.is_error for d in m[1])]


CORPUS = _corpus()


def _mutate(text: str, rnd: random.Random) -> str:
    """Inject end-of-line and standalone comments, line breaks and spaces."""
    skip = _long_string_lines(text)
    pieces = []
    for m in _SCAN.finditer(text):
        s = m.group()
        line = text.count("\n", 0, m.start()) + 1
        if m.lastgroup == "w" and line not in skip:
            s = re.sub(r", ", lambda _: rnd.choice([", ", ",\n", ",  # k\n", " ,  "]), s)
            s = re.sub(r"\n", lambda _: rnd.choice(["\n", "  # eol\n", "\n# own line\n",
                                                    "\n\n\n"]), s)
            s = re.sub(r" (\+|\*|==|\?\?) ",
                       lambda mm: rnd.choice([f" {mm.group(1)} ", mm.group(1),
                                              f" {mm.group(1)}\n"]), s)
        elif m.lastgroup == "o":
            s += rnd.choice(["", "", "\n", "  # open\n"])
        elif m.lastgroup == "x":
            s = rnd.choice(["", "", " ", "\n"]) + s
        pieces.append(s)
    return "".join(pieces)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, len(CORPUS) - 1), st.integers(0, 2**32))
def test_mutated_files_format_idempotently(which: int, seed: int) -> None:
    text = _mutate(CORPUS[which], random.Random(seed))
    module, diags = parse(text, "m.kflow")
    if module is None or any(d.is_error for d in diags):
        return  # the mutation broke the syntax (e.g. a newline where one ends a statement)
    once = _fmt(text, "m.kflow")  # raises if meaning or comments changed
    assert _fmt(once, "m.kflow") == once


_ATOMS = st.sampled_from(["a", "b", "1", "2.5", '"s"', "null", "true", "xs", "m.f", "30s"])
_BIN = st.sampled_from(["??", "or", "and", "==", "!=", "<", ">=", "in", "+", "-", "*", "/",
                        "//", "%"])


def _exprs():
    return st.recursive(_ATOMS, lambda inner: st.one_of(
        st.tuples(inner, _BIN, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"(not {e})"),
        inner.map(lambda e: f"(-{e})"),
        inner.map(lambda e: f"({e}).f"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]})[{t[1]}]"),
        st.tuples(inner, inner, inner).map(lambda t: f"(if {t[0]} then {t[1]} else {t[2]})"),
        st.tuples(inner, inner).map(lambda t: f"[{t[0]} for x in ({t[1]}) if ({t[0]})]"),
        st.lists(inner, max_size=3).map(lambda xs: "F(" + ", ".join(
            f"p{i}: {x}" for i, x in enumerate(xs)) + ")"),
        st.lists(inner, max_size=3).map(lambda xs: "{" + ", ".join(
            f"k{i}: {x}" for i, x in enumerate(xs)) + "}"),
    ), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_exprs())
def test_random_expressions_keep_their_meaning(expr: str) -> None:
    src = f"const X = {expr}\n"
    if parse(src, "e.kflow")[0] is None:
        return
    out = _fmt(src, "e.kflow")  # raises FormatError if the tree changed
    assert _fmt(out, "e.kflow") == out


# ----------------------------------------------------------------------- the command

MESSY_FILE = "const A=1\nnode  F() -> int\n"
CLEAN_FILE = "const A = 1\n\nnode F() -> int\n"


def _run(*args, stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_fmt(list(args[0]), check="--check" in args, diff="--diff" in args, out=out,
                   err=err, stdin=io.StringIO(stdin) if stdin is not None else None)
    return code, out.getvalue(), err.getvalue()


def test_fmt_writes_files_in_place(tmp_path: Path) -> None:
    f = tmp_path / "a.kflow"
    f.write_text(MESSY_FILE)
    code, _, err = _run([str(f)])
    assert code == 0 and f.read_text() == CLEAN_FILE
    assert "1 file reformatted" in err
    code, _, err = _run([str(f)])
    assert code == 0 and "1 file left unchanged" in err


def test_fmt_check_lists_files_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    messy, clean = tmp_path / "sub" / "m.kflow", tmp_path / "c.kflow"
    messy.write_text(MESSY_FILE)
    clean.write_text(CLEAN_FILE)
    code, out, err = _run([str(tmp_path)], "--check")
    assert code == 1
    assert out == f"would reformat {messy}\n"
    assert messy.read_text() == MESSY_FILE  # untouched
    assert "1 file would be reformatted, 1 file already formatted" in err
    messy.write_text(CLEAN_FILE)
    assert _run([str(tmp_path)], "--check")[0] == 0


def test_fmt_diff_prints_unified_diff(tmp_path: Path) -> None:
    f = tmp_path / "a.kflow"
    f.write_text(MESSY_FILE)
    code, out, _ = _run([str(f)], "--diff")
    assert code == 1
    assert out.startswith(f"--- {f}\n+++ {f}\n@@")
    assert "-const A=1\n" in out and "+const A = 1\n" in out
    assert f.read_text() == MESSY_FILE


def test_fmt_syntax_error_refuses_and_leaves_file(tmp_path: Path) -> None:
    f = tmp_path / "bad.kflow"
    bad = "workflow W() -> int {\n  let = 3\n}\n"
    f.write_text(bad)
    code, _, err = _run([str(f)])
    assert code == 1
    assert f"{f}:2:7: E0001 " in err
    assert f.read_text() == bad


def test_fmt_stdin_to_stdout() -> None:
    code, out, _ = _run(["-"], stdin=MESSY_FILE)
    assert code == 0 and out == CLEAN_FILE
    code, out, _ = _run(["-"], "--check", stdin=MESSY_FILE)
    assert code == 1


def test_fmt_usage_errors_exit_2(tmp_path: Path) -> None:
    assert _run([str(tmp_path / "missing.kflow")])[0] == 2
    assert _run([])[0] == 2


def test_fmt_through_the_cli(kflow_proc, tmp_path: Path) -> None:
    f = tmp_path / "a.kflow"
    f.write_text(MESSY_FILE)
    r = kflow_proc("fmt", "--check", f)
    assert r.exit_code == 1 and f"would reformat {f}" in r.stdout
    r = kflow_proc("fmt", f)
    assert r.exit_code == 0 and f.read_text() == CLEAN_FILE
    r = kflow_proc("fmt", "--nope", f)
    assert r.exit_code == 2
    r = kflow_proc("fmt")
    assert r.exit_code == 2


def test_comment_inside_a_generic_type_keeps_the_doc_comment() -> None:
    src = '## Doc.\nworkflow S(n: list[str\n]) -> map[  # why\nint] {\n  return {}\n}\n'
    out = _fmt(src)
    assert out.startswith("## Doc.\nworkflow S(")
    assert "  # why\n" in out
    module, _ = parse(out, "t.kflow")
    assert module.decls[0].doc == "Doc."
    assert _fmt(out) == out


def test_comment_in_an_unbreakable_header_goes_above_at_the_right_indent() -> None:
    src = ("workflow W(xs: list[str]) -> int {\n  for i in range(len(xs)) {\n"
           "    if xs[\ni  # why\n] == \"a\" {  # eol\n      return i\n    }\n  }\n  return 0\n}\n")
    out = _fmt(src)
    assert '    # why\n    if xs[i] == "a" {  # eol\n' in out
    assert _fmt(out) == out


def test_windows_line_endings_are_kept() -> None:
    src = 'const A=1  # c\r\nworkflow W() -> str {\r\n  let t = """\r\n  x\r\n  """\r\n  return t\r\n}\r\n'
    out = _fmt(src)
    assert out == ('const A = 1  # c\r\n\r\nworkflow W() -> str {\r\n  let t = """\r\n  x\r\n'
                   '  """\r\n  return t\r\n}\r\n')
    assert _fmt(out) == out


def test_header_breaks_the_result_when_it_cannot_fit_anyway() -> None:
    fields = ", ".join(f"field_{i}: int" for i in range(10))
    out = _fmt(f"workflow W(a: int, b: str) -> {{{fields}}} {{\n  return {{}}\n}}\n")
    assert out.startswith("workflow W(a: int, b: str) -> {\n  field_0: int,\n")
    assert "  field_9: int,\n} {\n  return {}\n}\n" in out
    params = ", ".join(f"p{i}: str" for i in range(12))
    out = _fmt(f"node N({params}) -> {{id: str, ok: bool}}\n")
    assert out.startswith("node N(\n  p0: str,\n") and out.endswith(") -> {id: str, ok: bool}\n")
