"""Static types of expressions (§3, §10) and assignability."""

from __future__ import annotations

import pytest
from checker_util import diag, errors, let_type, prog, wf

from kailash_dsl.compiler import types as T
from kailash_dsl.grammar import ast as A

HEADER = """
type Item { sku: str, qty: int = 1, price: float }
type Sku = str
enum Status { pending, paid }
@impl("m:f")
@effect(write)
node Rec(name: str) -> {name: str, n: int}
@impl("m:g")
@effect(read)
node Other(x: int) -> {name: str, n: int}
"""


def typ(expr: str, params: str = "items: list[Item], m: map[int], s: str, i: int, "
                                 "f: float, o: Item?, j: json, st: Status, d: duration") -> str:
    p = prog(HEADER + wf(f"  let probe = {expr}", params=params))
    assert errors(p) == [], [d.message for d in p.diagnostics if d.is_error]
    return let_type(p, "probe")


@pytest.mark.parametrize("expr, expected", [
    ("1", "int"), ("1.5", "float"), ('"x"', "str"), ("true", "bool"), ("null", "null"),
    ("250ms", "duration"), ('"a ${i} ${o} ${items}"', "str"),
    ("i + i", "int"), ("i + f", "float"), ("i / i", "float"), ("i // i", "int"),
    ("f // i", "float"), ("i % 2", "int"), ("-i", "int"), ("-f", "float"),
    ('s + "x"', "str"), ("[1] + [2]", "list[int]"), ("[1] + [2.5]", "list[float]"),
    ("d + 1s", "duration"), ("d * 2", "duration"),
    ("i < 2 and s == \"x\" or not (f >= 1)", "bool"), ('"k" in m', "bool"),
    ("2 in [1, 2]", "bool"), ('"a" in s', "bool"),
    ("o?.sku", "str?"), ('o?.sku ?? "none"', "str"), ("o ?? items[0]", "Item"),
    ("if i > 0 then 1 else 2.5", "float"), ("if i > 0 then o else null", "Item?"),
    ("if i > 0 then null else 3", "int?"),
    ("[it.price * it.qty for it in items if it.qty > 0]", "list[float]"),
    ("items[0].sku", "str"), ('m["k"]', "int"), ("s[0]", "str"),
    ("j.anything[3]", "json"), ("st == Status.paid", "bool"), ("Status.paid", "Status"),
    ("{a: 1, b: [s]}", "{a: int, b: list[str]}"), ('{"a": 1, "b": 2}', "map[int]"),
    ("[]", "list[{unknown}]"),
])
def test_expression_types(expr, expected):
    assert typ(expr) == expected


@pytest.mark.parametrize("expr, expected", [
    ("len(s) + len(items) + len(m)", "int"), ("str(i)", "str"), ("int(s)", "int"),
    ("float(i)", "float"), ("bool(j)", "bool"), ("lower(s)", "str"), ("upper(s)", "str"),
    ("trim(s)", "str"), ('split(s, ",")', "list[str]"), ('join(["a"], ",")', "str"),
    ("contains([1], 1)", "bool"), ("keys(m)", "list[str]"), ("values(m)", "list[int]"),
    ("sum([1, 2])", "int"), ("sum([1.5])", "float"), ("min([1, 2])", "int"),
    ("max([s])", "str"), ("abs(-f)", "float"), ("abs(i)", "int"), ("round(f)", "int"),
    ("round(f, 2)", "float"), ("range(3)", "list[int]"), ("sorted([s])", "list[str]"),
    ("uuid()", "str"), ("now()", "str"), ("random()", "float"), ('env("HOME")', "str"),
    ('secret("K")', "str"),
])
def test_builtin_result_types(expr, expected):
    assert typ(expr) == expected


@pytest.mark.parametrize("expr", [
    "len(i)", "sum([s])", "round(s)", "upper(i)", "range(f)", "join([1], s)",
    "min(i)", "keys(items)", "contains(i, 1)", 'split(s, 1)', "sorted([o])",
])
def test_builtin_argument_mismatch_is_E0201_at_the_argument(expr):
    p = prog(HEADER + wf(f"  let probe = {expr}",
                         params="items: list[Item], s: str, i: int, f: float, o: Item?"))
    assert errors(p) == ["E0201@12"]


def test_when_gives_optional_and_try_else_unifies():
    p = prog(HEADER + wf("  let a = Rec(name: \"x\") when c\n"
                         "  let b = try Rec(name: \"x\") else Other(x: 1)\n"
                         "  let n = a?.n ?? b.n", params="c: bool", body_tail="return n"))
    assert errors(p) == []
    assert let_type(p, "a") == "{name: str, n: int}?"
    assert let_type(p, "b") == "{name: str, n: int}"


def test_try_else_with_different_types_is_E0201_at_the_fallback():
    src = HEADER + '@impl("m:h")\nnode Num() -> int\n' + wf(
        '  let b = try Rec(name: "x") else Num()', body_tail="return 0")
    p = prog(src)
    assert errors(p) == ["E0201@14"]
    d = diag(p, "E0201")
    assert d.span.column == 35 and "fallback" in d.message


def test_wait_payload_type_comes_from_the_annotation():
    p = prog("type Ap { ok: bool }\n" + wf(
        '  let a: Ap? = wait "approval" timeout 1h\n  let b = wait "raw"\n'
        '  let ok = a?.ok ?? false', body_tail="return 0"))
    waits = {w.signal: t for w, t in p.waits.items()}
    assert waits["approval"].show() == "Ap" and waits["raw"] == T.JSON
    assert let_type(p, "a") == "Ap?" and let_type(p, "b") == "json"
    assert let_type(p, "ok") == "bool"


def test_for_with_yield_is_a_list():
    p = prog(HEADER + wf("  let xs = for it in items {\n    let r = Other(x: it.qty)\n"
                         "    yield r.n * it.price\n  }", params="items: list[Item]"))
    assert errors(p) == []
    assert let_type(p, "xs") == "list[float]"


def test_aliases_and_structural_records():
    src = ("type Sku = str\ntype A { x: int, y: str = \"d\" }\ntype B { x: int }\n"
           "workflow W(s: Sku, b: B) -> A {\n  let t: str = s\n  let a: A = b\n"
           "  return {x: 1}\n}\n")
    p = prog(src)
    assert errors(p) == []
    ret = next(n for n in p.types if isinstance(n, A.RecordLit))
    assert p.types[ret].show() == "A"   # the literal gets the expected record type


def test_record_literal_fields_are_checked_against_the_expected_type():
    src = ("type A { x: int, y: str }\n"
           "workflow W() -> A {\n  return {x: \"1\", y: \"s\"}\n}\n")
    p = prog(src)
    assert errors(p) == ["E0205@3"]
    assert diag(p, "E0205").span.column == 14


def test_values_from_elsewhere_may_have_extra_fields():
    src = (HEADER + "type Named { name: str }\n"
           + wf('  let r = Rec(name: "x")\n  let n: Named = r', body_tail="return 0"))
    assert errors(prog(src)) == []


def test_empty_braces_are_a_map_or_a_record_as_needed():
    src = ("type Opts { tags: map[str] = {}, extra: {a: int?} = {a: null} }\n"
           + wf("  let m: map[int] = {}\n  let r: {} = {}\n  let o: Opts = {}"))
    assert errors(prog(src)) == []


@pytest.mark.parametrize("src, dst, ok", [
    (T.INT, T.FLOAT, True), (T.FLOAT, T.INT, False), (T.INT, T.Optional(T.INT), True),
    (T.NULL, T.Optional(T.STR), True), (T.Optional(T.INT), T.INT, False),
    (T.ListT(T.INT), T.ListT(T.FLOAT), True), (T.ListT(T.FLOAT), T.ListT(T.INT), False),
    (T.STR, T.JSON, True), (T.JSON, T.STR, False), (T.UNKNOWN, T.INT, True),
    (T.RecordT((T.FieldT("a", T.INT), T.FieldT("b", T.STR))),
     T.RecordT((T.FieldT("a", T.FLOAT),)), True),
    (T.RecordT((T.FieldT("b", T.STR),)), T.RecordT((T.FieldT("a", T.INT),)), False),
    (T.RecordT(()), T.RecordT((T.FieldT("a", T.INT, True, 1),)), True),
])
def test_assignability_rules(src, dst, ok):
    assert T.assignable(src, dst) is ok


def test_types_of_every_visited_expression_are_recorded():
    p = prog(wf("  let x = 1 + 2 * 3"))
    binaries = [n for n in p.types if isinstance(n, A.Binary)]
    assert len(binaries) == 2 and all(p.types[b] == T.INT for b in binaries)


def test_unknown_after_an_error_does_not_cascade():
    p = prog(wf("  let a = nope + 1\n  let b = a.field.deeper\n  let c: str = b\n"
                "  let d = upper(c) + a", body_tail="return d"))
    assert errors(p) == ["E0101@2"]


def test_int_to_float_widening_in_arguments_and_returns():
    src = ('@impl("m:f")\n@effect(pure)\nnode F(x: float) -> float\n'
           "workflow W(n: int) -> float {\n  let r = F(x: n)\n  return n + r\n}\n")
    assert errors(prog(src)) == []
