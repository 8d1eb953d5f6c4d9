"""The Pygments lexer: every token class appears, valid files never give `Error` tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from pygments.token import Error, Token

from kailash_dsl.pygments_lexer import KflowLexer

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

SAMPLE = r'''# a comment
## Charge a card.
module shop.orders
import std.http as web
const TAX = 0.2
type Item { sku: str, qty: int = 1, tags: list[str]?, extra: map[json] }
enum Status { pending, paid }
@impl("shop:charge")
@retry(attempts: 3, backoff: exponential(200ms, max: 5s))
node Charge(amount: float, ok: bool = true, data: bytes? = null) -> {id: str, wait: duration}
workflow Order(items: list[Item]) -> json {
  let n = len(items) * 2 + 1_000 // 3 % 2
  let big = n >= 10 and not (n == 3 or false) ?? true
  let first = items[0]?.sku
  transaction saga { let c = Charge(amount: 1.5e3) }
  transaction 2pc { let d = Charge(amount: 2.0) }
  let a: Status? = wait "approval" timeout 24h
  if n in [1, 2] then 1 else 2
  for i in items { yield i.qty }
  try { sleep 30s } catch Timeout as e { fail "late: ${e.message}\n\u{1F600}" }
  parallel { emit "x" {v: 1}; checkpoint }
  let t = """
    multi ${n + 1} line \t
  """
  return {n: n, s: Status.paid}
}
'''

EXPECTED = {
    Token.Comment.Single, Token.Comment.Special, Token.Keyword, Token.Keyword.Declaration,
    Token.Keyword.Namespace, Token.Keyword.Pseudo, Token.Keyword.Constant,
    Token.Keyword.Type, Token.Operator.Word, Token.Operator, Token.Punctuation,
    Token.Name.Decorator, Token.Name.Function, Token.Name.Class, Token.Name.Builtin,
    Token.Name, Token.String, Token.String.Escape, Token.String.Interpol,
    Token.Number.Integer, Token.Number.Float, Token.Number.Duration, Token.Text.Whitespace,
}


def _tokens(text: str):
    return list(KflowLexer().get_tokens(text))


def test_every_token_class_is_produced() -> None:
    produced = {t for t, _ in _tokens(SAMPLE)}
    assert EXPECTED - produced == set()
    assert not any(t in Error for t in produced)


@pytest.mark.parametrize("text,token", [
    ("## doc", Token.Comment.Special),
    ("# plain", Token.Comment.Single),
    ("@retry", Token.Name.Decorator),
    ("250ms", Token.Number.Duration),
    ("1_000", Token.Number.Integer),
    ("1e-3", Token.Number.Float),
    ("null", Token.Keyword.Constant),
    ("let", Token.Keyword.Declaration),
])
def test_single_tokens(text: str, token) -> None:
    assert _tokens(text)[0] == (token, text)


def test_contextual_keywords_only_in_context() -> None:
    toks = _tokens('transaction 2pc { }\nlet saga = 1\nwait "s" timeout 1h\nlet timeout = 2\n')
    pseudo = [v for t, v in toks if t is Token.Keyword.Pseudo]
    assert pseudo == ["2pc", "timeout"]
    assert (Token.Name, "saga") in toks and (Token.Name, "timeout") in toks


def test_interpolation_is_lexed_as_an_expression() -> None:
    toks = _tokens('"a ${x.y + 1} b"')
    assert (Token.String.Interpol, "${") in toks and (Token.String.Interpol, "}") in toks
    assert (Token.Number.Integer, "1") in toks and (Token.Operator, "+") in toks


def _valid_files() -> list[Path]:
    """Every .kflow file but those of syntax-error cases (a bad escape is an error token
    for the highlighter too)."""
    files = [p for p in REPO.rglob("*.kflow") if "node_modules" not in p.parts
             and "E0001" not in p.read_text(encoding="utf-8").split("\n", 1)[0]]
    if (SHARED / "conformance").is_dir():
        files += [p for p in (SHARED / "conformance").rglob("*.kflow")
                  if "err_syntax" not in p.name]
    return sorted(files)


def test_no_error_tokens_on_valid_files() -> None:
    files = _valid_files()
    assert files
    for path in files:
        bad = [(v, path) for t, v in _tokens(path.read_text(encoding="utf-8")) if t in Error]
        assert not bad, bad


def test_registered_with_pygments() -> None:
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="pygments.lexers") if ep.name == "kflow"]
    if not eps:
        pytest.skip("package not installed with its entry points (pip install -e .)")
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    assert isinstance(get_lexer_by_name("kflow"), KflowLexer)
    assert isinstance(get_lexer_for_filename("orders.kflow"), KflowLexer)


def test_lexer_module_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, kailash_dsl.pygments_lexer, kailash_dsl.format; "
            "print(any(m == 'rich' or m.startswith('rich.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, check=True)
    assert out.stdout.strip() == "False"
