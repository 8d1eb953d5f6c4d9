"""A Pygments lexer for kflow (`pygmentize -l kflow`, Sphinx/MkDocs ```` ```kflow ````).

Registered as the ``kflow`` entry point in the ``pygments.lexers`` group, so any tool that
asks Pygments for a lexer by name, alias or ``*.kflow`` file name finds it once the package
is installed. It imports nothing but Pygments.

Token classes produced (tests check every one appears and that valid files give no
``Error`` token):

========================  ===============================================================
``Comment.Single``        ``# ...``
``Comment.Special``       ``## ...`` doc comments
``Keyword``               reserved words (``if``, ``for``, ``transaction``, ``return``...)
``Keyword.Declaration``   ``let``, ``const``, ``node``, ``workflow``, ``type``, ``enum``
``Keyword.Namespace``     ``module``, ``import``, ``as``
``Keyword.Pseudo``        contextual keywords: ``saga``/``2pc`` after ``transaction``,
                          ``timeout`` after ``wait "..."``
``Keyword.Constant``      ``true``, ``false``, ``null``
``Keyword.Type``          builtin types (``int``, ``str``, ``list``, ``map``, ``json``...)
``Operator.Word``         ``and``, ``or``, ``not``, ``in``
``Operator``              ``+ - * / // % == != < <= > >= = ?? ?. ? ->``
``Punctuation``           brackets, ``,`` ``:`` ``;`` ``.``
``Name.Decorator``        attributes: ``@retry``
``Name.Function``         declared node/workflow names and calls (``Charge(``)
``Name.Class``            declared type/enum names and capitalised type names
``Name.Builtin``          builtin functions at a call (``len(``, ``sum(``)
``Name``                  other identifiers
``String``                ``"..."`` and ``\"\"\"...\"\"\"``
``String.Escape``         ``\\n``, ``\\u{1F600}``...
``String.Interpol``       the ``${`` and ``}`` around an interpolated expression
``Number.Integer``        ``42``, ``1_000``
``Number.Float``          ``3.5``, ``1e-3``
``Number.Duration``       ``250ms``, ``30s``, ``5m``, ``2h``, ``1d``
``Whitespace``            spaces and newlines
========================  ===============================================================
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, include, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Whitespace,
)

__all__ = ["KflowLexer"]

KEYWORDS = ("if", "then", "else", "for", "when", "parallel", "transaction", "try", "catch",
            "return", "fail", "wait", "sleep", "emit", "checkpoint", "yield")
DECLARATIONS = ("let", "const", "node", "workflow", "type", "enum")
TYPES = ("int", "float", "str", "bool", "bytes", "duration", "json", "list", "map")
BUILTINS = ("len", "str", "int", "float", "bool", "lower", "upper", "trim", "split", "join",
            "contains", "keys", "values", "sum", "min", "max", "abs", "round", "range",
            "sorted", "uuid", "now", "random", "env", "secret", "exponential", "constant")

_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_STR = r'"(?:[^"\\\n]|\\.)*"'


class KflowLexer(RegexLexer):
    """Lexer for kflow, the typed declarative workflow language."""

    name = "kflow"
    aliases = ["kflow"]
    filenames = ["*.kflow"]
    mimetypes = ["text/x-kflow"]
    url = "https://github.com/kailash/kflow"

    tokens = {
        "root": [
            (r"\n", Whitespace),
            (r"[ \t\f\r]+", Whitespace),
            (r"##[^\n]*", Comment.Special),
            (r"#[^\n]*", Comment.Single),
            (r"@" + _ID, Name.Decorator),
            (r"(node|workflow)(\s+)(" + _ID + ")",
             bygroups(Keyword.Declaration, Whitespace, Name.Function)),
            (r"(type|enum)(\s+)(" + _ID + ")",
             bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (r"(transaction)(\s+)(saga|2pc)\b",
             bygroups(Keyword, Whitespace, Keyword.Pseudo)),
            (r"(wait)(\s+)(" + _STR + r")(\s+)(timeout)\b",
             bygroups(Keyword, Whitespace, String, Whitespace, Keyword.Pseudo)),
            (words(("module", "import", "as"), suffix=r"\b"), Keyword.Namespace),
            (words(DECLARATIONS, suffix=r"\b"), Keyword.Declaration),
            (words(("true", "false", "null"), suffix=r"\b"), Keyword.Constant),
            (words(("and", "or", "not", "in"), suffix=r"\b"), Operator.Word),
            (words(KEYWORDS, suffix=r"\b"), Keyword),
            include("expr"),
        ],
        "expr": [
            (r"[ \t\f\r\n]+", Whitespace),
            (words(BUILTINS, suffix=r"(?=\s*\()"), Name.Builtin),
            (words(TYPES, suffix=r"\b"), Keyword.Type),
            (r"[A-Za-z_][A-Za-z0-9_]*(?=\s*\()", Name.Function),
            (r"[A-Z][A-Za-z0-9_]*", Name.Class),
            (_ID, Name),
            (r"[0-9][0-9_]*(?:ms|s|m|h|d)(?![A-Za-z0-9_])", Number.Duration),
            (r"[0-9][0-9_]*\.[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?|[0-9][0-9_]*[eE][+-]?[0-9]+",
             Number.Float),
            (r"[0-9][0-9_]*", Number.Integer),
            (r'"""', String, "long_string"),
            (r'"', String, "string"),
            (r"->|\?\?|\?\.|==|!=|<=|>=|//|[-+*/%<>=?]", Operator),
            (r"[(){}\[\],:;.]", Punctuation),
        ],
        "escapes": [
            (r"\\u\{[0-9A-Fa-f]{1,6}\}", String.Escape),
            (r'\\[nrt"\\$0]', String.Escape),
            (r"\$\{", String.Interpol, "interpolation"),
        ],
        "string": [
            include("escapes"),
            (r'"', String, "#pop"),
            (r'[^"\\$\n]+', String),
            (r"\$", String),
        ],
        "long_string": [
            include("escapes"),
            (r'"""', String, "#pop"),
            (r'[^"\\$]+', String),
            (r'[$"]', String),
        ],
        "interpolation": [
            (r"\}", String.Interpol, "#pop"),
            (words(("and", "or", "not", "in", "if", "then", "else", "for"), suffix=r"\b"),
             Operator.Word),
            (words(("true", "false", "null"), suffix=r"\b"), Keyword.Constant),
            include("expr"),
        ],
    }
