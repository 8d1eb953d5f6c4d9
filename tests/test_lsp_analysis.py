"""The language server's analysis layer, in process (no LSP): index, hover texts,
definitions, completion contexts on text that does not parse, rename spans, symbols."""

from __future__ import annotations

from pathlib import Path

import pytest

from kailash_dsl.lsp.analysis import Analysis, complete

SRC = '''enum Tier { basic, gold }

type Customer { name: str, tier: Tier = Tier.basic }

## Look a customer up.
@impl("crm:lookup")
@effect(read)
node Lookup(id: str) -> {customer: Customer, found: bool}

workflow Greet(id: str, loud: bool = false) -> str {
  let r = Lookup(id: id)
  let names = [c for c in [r.customer.name] if c != ""]
  try {
    Lookup(id: "x")
  } catch Timeout as e {
    fail "lookup: ${e.message}"
  }
  let tier = r.customer.tier
  if tier == Tier.gold and loud {
    return upper(names[0])
  }
  return names[0]
}
'''


@pytest.fixture(scope="module")
def a(tmp_path_factory) -> Analysis:
    path = tmp_path_factory.mktemp("an") / "greet.kflow"
    path.write_text(SRC)
    result = Analysis(SRC, str(path))
    assert result.ok and not [d for d in result.diagnostics if d.is_error], result.diagnostics
    return result


def at(needle: str, nth: int = 0, offset: int = 0) -> tuple[int, int]:
    i = -1
    for _ in range(nth + 1):
        i = SRC.index(needle, i + 1)
    i += offset
    return SRC.count("\n", 0, i) + 1, i - SRC.rfind("\n", 0, i)


def hover(a: Analysis, *where) -> str:
    found = a.hover(*at(*where))
    assert found is not None, where
    return found[0]


def test_hover_texts(a) -> None:
    assert "let r: {customer: Customer, found: bool}" in hover(a, "r.customer.name")
    assert "node Lookup(id: str) -> {customer: Customer, found: bool}" in hover(a, "Lookup(id: id)")
    assert "Look a customer up." in hover(a, "Lookup(id: id)")
    assert "effect `read`" in hover(a, "Lookup(id: id)")
    assert "enum Tier { basic, gold }" in hover(a, "Tier.gold", 0)
    assert "Tier.gold" in hover(a, "gold and", 0)
    assert "type Customer {" in hover(a, "Customer,")
    assert "catch e: Error" in hover(a, "e.message", 0)
    assert "message: str" in hover(a, "message}", 0)
    assert "for c: str" in hover(a, "c for c", 0)
    assert "upper(s)" in hover(a, "upper(")
    assert "param loud: bool" in hover(a, "loud {")
    assert "@impl" in hover(a, "@impl", 0, 1)
    assert "bool" in hover(a, "and loud", 0, 1)  # an operator: the expression's type


def test_definitions(a) -> None:
    loc = a.definition(*at("tier == "))
    assert (loc.span.line, loc.span.column) == at("tier = r")
    loc = a.definition(*at("gold and"))
    assert (loc.span.line, loc.span.column) == at("gold }")
    loc = a.definition(*at("name]"))
    assert (loc.span.line, loc.span.column) == at("name: str")
    loc = a.definition(*at("customer.tier", 0))
    assert (loc.span.line, loc.span.column) == at("customer: Customer")
    assert a.definition(*at("if tier")) is None  # a keyword


def test_rename_spans_cover_interpolations(a) -> None:
    spans = a.rename_spans(*at("id: str, loud"))
    assert [(s.line, s.column) for s in spans] == [at("id: str, loud"), at("id: id)", 0, 4)]
    assert a.rename_spans(*at("Lookup(id: id)")) is None


def test_symbols(a) -> None:
    syms = {s["name"]: s for s in a.symbols()}
    assert syms["Tier"]["kind"] == "enum"
    assert [c["name"] for c in syms["Tier"]["children"]] == ["basic", "gold"]
    assert [c["name"] for c in syms["Greet"]["children"]] == ["id", "loud", "r", "names",
                                                               "tier"]
    assert syms["Lookup"]["detail"] == "(id: str) -> {customer: Customer, found: bool}"


def _labels(items) -> set[str]:
    return {c.label for c in items}


def test_completion_on_text_that_does_not_parse(a) -> None:
    broken = SRC.replace("  return names[0]\n}", "  let z = r.customer.\n}")
    line = broken.split("\n").index("  let z = r.customer.") + 1
    assert _labels(complete(broken, line, len("  let z = r.customer.") + 1, a)) == \
        {"name", "tier"}
    broken = SRC.replace("  return names[0]\n}", "  let t = Tier.\n}")
    line = broken.split("\n").index("  let t = Tier.") + 1
    assert _labels(complete(broken, line, len("  let t = Tier.") + 1, a)) == {"basic", "gold"}
    broken = SRC.replace("  return names[0]\n}", "  Lookup(\n}")
    line = broken.split("\n").index("  Lookup(") + 1
    items = complete(broken, line, len("  Lookup(") + 1, a)
    assert [c.label for c in items if c.kind == "param"] == ["id"]


def test_completion_contexts(a) -> None:
    comment = "workflow W() -> int {\n  # Tier.\n  return 1\n}\n"
    assert complete(comment, 2, len("  # Tier.") + 1, a) == []
    attrs = complete("@\nnode X()\n", 1, 2, a)
    assert {"impl", "effect", "retry", "compensate"} <= _labels(attrs)
    general = complete(SRC, *at("  return names[0]\n}", 0, 2), a)
    labels = _labels(general)
    assert {"r", "names", "tier", "id", "loud"} <= labels  # bindings in scope
    assert {"Lookup", "Customer", "Tier", "Greet", "len", "transaction", "let"} <= labels


def test_syntax_error_analysis_has_only_the_syntax_diagnostic(tmp_path: Path) -> None:
    a = Analysis("workflow W( {\n", str(tmp_path / "bad.kflow"))
    assert not a.ok
    assert [d.code for d in a.diagnostics] == ["E0001"]
    assert a.hover(1, 2) is None and a.symbols() == []


def test_completion_of_stdlib_modules_in_an_import(a) -> None:
    labels = _labels(complete("import std.\n", 1, len("import std.") + 1, a))
    assert {"core", "http", "sql", "file", "json", "text"} <= labels
    assert _labels(complete("import std.\n", 1, len("import std.") + 1, None)) == labels
