"""The front end never raises on bad input: it only returns Diagnostics.

Random text, and random token-level mutations (deleted, duplicated, swapped tokens) of
every .kflow file in examples/ and tests/cases/, go through the parser and the whole
checker (``kailash_dsl.compiler.api.check`` on a temporary file), and the diagnostics
that come out must render in every format.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kailash_dsl import render
from kailash_dsl.diagnostics import Diagnostic
from kailash_dsl.grammar.parser import parse

REPO = Path(__file__).resolve().parent.parent

_FALLBACK = '''\
type Item { sku: str, qty: int = 1 }
enum Status { pending, paid }
@impl("m:f")
@effect(write, resource: "db")
@compensate(Undo)
node Do(item: Item, n: int = 1) -> { id: str, status: Status }
@impl("m:g")
node Undo(id: str) -> null
workflow W(items: list[Item], flag: bool = true) -> { ids: list[str] } {
  let ids = for it in items {
    let r = Do(item: it) when flag
    yield r?.id ?? "none"
  }
  transaction saga { let a = Do(item: items[0]) }
  let xs = [i.qty * 2 for i in items if i.qty > 1]
  try { Do(item: items[0]) } catch Timeout as e { fail "t ${e.message}" }
  return {ids: ids}
}
'''


def _corpus() -> list[str]:
    files = sorted(p for d in ("examples", "tests/cases") for p in (REPO / d).rglob("*.kflow"))
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    return texts or [_FALLBACK]


CORPUS = _corpus()
_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"?|[A-Za-z_][A-Za-z0-9_]*|\d[\w.]*|\n|[ \t]+|#[^\n]*|'
                    r'->|\?\?|\?\.|==|!=|<=|>=|//|.', re.DOTALL)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _front_end():
    try:
        from kailash_dsl.compiler.api import check
    except ImportError:  # the checker has not landed: fuzz the parser alone
        return None
    return check


CHECK = _front_end()


def run_front_end(text: str) -> list[Diagnostic]:
    """Parse (and check, when the checker exists) ``text``; return its diagnostics."""
    _, diags = parse(text, "fuzz.kflow")
    assert all(isinstance(d, Diagnostic) for d in diags)
    if CHECK is None:
        out = list(diags)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "fuzz.kflow"
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
            result = CHECK([str(path)])
            out = list(getattr(result, "diagnostics", result))
    for d in out:
        assert isinstance(d, Diagnostic), d
        assert d.severity in ("error", "warning"), d
        assert d.span.line >= 0 and d.span.column >= 0, d
    # Whatever came out must render, in every format.
    sources = {d.span.file: text for d in out}
    render.render_human(out, 1, sources=sources)
    for fmt in ("json", "github", "sarif"):
        render.render(fmt, out, 1)
    return out


@st.composite
def mutated(draw):
    text = draw(st.sampled_from(CORPUS))
    toks = _tokens(text)
    for _ in range(draw(st.integers(1, 4))):
        if not toks:
            break
        op = draw(st.sampled_from(("delete", "duplicate", "swap", "insert")))
        i = draw(st.integers(0, len(toks) - 1))
        if op == "delete":
            del toks[i]
        elif op == "duplicate":
            toks.insert(i, toks[i])
        elif op == "swap":
            j = draw(st.integers(0, len(toks) - 1))
            toks[i], toks[j] = toks[j], toks[i]
        else:
            toks.insert(i, draw(st.sampled_from(
                ["{", "}", "(", ")", "[", "]", ",", ":", "=", "\n", "let", "yield", "@retry",
                 "when", "?.", "??", '"${', "transaction", "2pc", "for", "in", "->", "null"])))
    return "".join(toks)


KFLOW_ALPHABET = st.sampled_from(list("abcxyzLNW{}()[]<>=!?.:,;@#\"$\\ \t\n_019+-*/%") +
                                 ["let ", "workflow ", "node ", "type ", "for ", "if ",
                                  "return ", "yield ", "import ", "->", "${", '"""', "é", "名"])

#: ~200 examples per test keeps the suite fast; KFLOW_FUZZ_EXAMPLES=5000 for a long hunt.
FUZZ = settings(max_examples=int(os.environ.get("KFLOW_FUZZ_EXAMPLES", "200")),
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.text(max_size=300))
def test_random_text(text):
    run_front_end(text)


@FUZZ
@given(st.lists(KFLOW_ALPHABET, max_size=120).map("".join))
def test_random_kflow_like_text(text):
    run_front_end(text)


@FUZZ
@given(mutated())
def test_token_mutations_of_corpus(text):
    run_front_end(text)


@pytest.mark.parametrize("index", range(len(CORPUS)))
def test_corpus_itself(index):
    run_front_end(CORPUS[index])
