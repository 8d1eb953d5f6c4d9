"""Source text → AST, with syntax errors as :class:`Diagnostic` values.

One Lark LALR parser (contextual lexer, grammar cache) is built lazily per process. The
AST is built inline by :class:`_Builder` while parsing (no intermediate parse tree), and
spans come straight from tokens — ``propagate_positions`` measured ~1.4× slower on the
10k-line benchmark, so it stays off.
"""

from __future__ import annotations

import re
import threading
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.parsers.lalr_analysis import Shift

from ..diagnostics import Diagnostic, error
from . import ast as A

GRAMMAR = Path(__file__).with_name("kflow.lark")

_OPENERS = {"LPAR": "(", "LSQB": "[", "LBRACE": "{"}
_CLOSERS = {"RPAR": "LPAR", "RSQB": "LSQB", "RBRACE": "LBRACE"}
_STMT_ATTR_OK = (A.Let, A.ExprStmt, A.For, A.Parallel, A.Transaction, A.Try)


class SyntaxProblem(Exception):
    """Raised inside the builder for a problem the grammar alone cannot see."""

    def __init__(self, message: str, span: A.Span, help: str | None = None,
                 code: str = "E0001"):
        super().__init__(message)
        self.message, self.span, self.help, self.code = message, span, help, code


class _PostLex:
    """Newline rules of §1 at the token level: see the header of kflow.lark."""

    always_accept = ("_NL",)

    def __init__(self) -> None:
        self.stack: list[Token] = []
        self.history: list[Token] = []
        # the newline held back while looking at the next token; set until the parser has
        # taken it, so a syntax error raised meanwhile can tell the line ended there
        self.pending: Token | None = None

    def process(self, stream):
        stack: list[Token] = []
        history: list[Token] = []
        self.stack, self.history, self.pending = stack, history, None
        pending = None
        last = None
        for tok in stream:
            t = tok.type
            if t == "_NL":
                if stack and stack[-1].type != "LBRACE":
                    continue
                if pending is None and last is not None:
                    pending = self.pending = tok
                continue
            if pending is not None:
                if t not in ("ELSE", "CATCH"):
                    history.append(pending)
                    yield pending
                pending = self.pending = None
            if t in _OPENERS:
                stack.append(tok)
            elif t in _CLOSERS and stack and stack[-1].type == _CLOSERS[t]:
                stack.pop()
            history.append(tok)
            if len(history) > 8:
                del history[:4]
            last = tok
            yield tok
        if pending is not None:
            yield pending
            self.pending = None


class _Builder:
    """Lark inline callbacks: children lists → AST nodes."""

    def __init__(self) -> None:
        self.file = "<string>"
        self.loff = 0
        self.coff = 0
        self.soft: list[Diagnostic] = []
        self.parse_expr = None  # set by Parser

    # -- spans -------------------------------------------------------------
    def ts(self, tok: Token) -> A.Span:
        line, col = tok.line, tok.column
        end_line, end_col = tok.end_line, tok.end_column
        if line == 1:
            col += self.coff
        if end_line == 1:
            end_col += self.coff
        return A.Span(self.file, line + self.loff, col, end_line + self.loff, end_col)

    def sp(self, first: Any, last: Any) -> A.Span:
        a = first if isinstance(first, A.Span) else (
            self.ts(first) if isinstance(first, Token) else first.span)
        b = last if isinstance(last, A.Span) else (
            self.ts(last) if isinstance(last, Token) else last.span)
        return a.to(b)

    @staticmethod
    def nodes(children) -> list:
        return [c for c in children if not isinstance(c, Token)]

    # -- module level ------------------------------------------------------
    def start(self, c):
        return c

    def module_decl(self, c):
        return A.ModuleDecl(c[1][0], self.sp(c[0], c[1][1]))

    def dotted(self, c):
        names = [t for t in c if t.type == "NAME"]
        return (".".join(names), self.sp(names[0], names[-1]))

    def import_decl(self, c):
        target, tspan = c[1]
        alias = str(c[3]) if len(c) > 2 else None
        return A.Import(target, alias, False, tspan, self.sp(c[0], c[-1] if len(c) > 2 else tspan))

    def import_file(self, c):
        value = self._plain_string(c[1])
        return A.Import(value, str(c[3]), True, self.ts(c[1]), self.sp(c[0], c[3]))

    def const_decl(self, c):
        typ = c[3] if c[2].type == "COLON" else None
        return A.Const(str(c[1]), self.ts(c[1]), typ, c[-1], None, (), self.sp(c[0], c[-1]))

    def type_record(self, c):
        fields, span = c[2]
        return A.TypeDecl(str(c[1]), self.ts(c[1]), fields, None, None, (), self.sp(c[0], span))

    def type_alias(self, c):
        return A.TypeDecl(str(c[1]), self.ts(c[1]), None, c[3], None, (), self.sp(c[0], c[3]))

    def enum_decl(self, c):
        members = c[3]
        return A.EnumDecl(str(c[1]), self.ts(c[1]), members, None, (), self.sp(c[0], c[4]))

    def enum_items(self, c):
        out = []
        prev = None
        for tok in c:
            if tok.type == "NAME":
                if prev is not None and prev.type == "NAME" and prev.line == tok.line:
                    raise SyntaxProblem("expected `,` or a newline between enum members",
                                        self.ts(tok))
                out.append((str(tok), self.ts(tok)))
            prev = tok
        return tuple(out)

    def node_decl(self, c):
        result = c[6] if len(c) > 6 else None
        return A.NodeDecl(str(c[1]), self.ts(c[1]), c[3], result, (), None,
                          self.sp(c[0], c[-1]))

    def workflow_decl(self, c):
        result = c[6] if len(c) > 7 else None
        return A.WorkflowDecl(str(c[1]), self.ts(c[1]), c[3], result, (), None, c[-1],
                              self.sp(c[0], c[-1]))

    def params(self, c):
        ps = tuple(x for x in c if isinstance(x, A.Field))
        seen: set[str] = set()
        for p in ps:
            if p.name in seen:
                raise SyntaxProblem(f"parameter `{p.name}` is declared twice", p.name_span,
                                    "give each parameter its own name", code="E0103")
            seen.add(p.name)
        return ps

    def param(self, c):
        default = c[4] if len(c) > 3 else None
        return A.Field(str(c[0]), c[2], default, self.ts(c[0]), self.sp(c[0], c[-1]))

    field = param

    def attr(self, c):
        if len(c) > 2:
            args = c[3]
            return A.Attr(str(c[1]), args, self.ts(c[1]), self.sp(c[0], c[-1]))
        return A.Attr(str(c[1]), (), self.ts(c[1]), self.sp(c[0], c[1]))

    # -- types ---------------------------------------------------------------
    def type_name(self, c):
        name, span = c[0]
        return A.TypeName(name, span)

    def type_generic(self, c):
        args = tuple(x for x in c if not isinstance(x, Token))
        return A.TypeGeneric(str(c[0]), args, self.sp(c[0], c[-1]))

    def type_optional(self, c):
        return A.TypeOptional(c[0], self.sp(c[0], c[1]))

    def type_null(self, c):
        return A.TypeName("null", self.ts(c[0]))

    def record_type_body(self, c):
        fields = self._separated(c[1:-1], A.Field, "fields")
        seen: set[str] = set()
        for f in fields:
            if f.name in seen:
                raise SyntaxProblem(f"field `{f.name}` is declared twice", f.name_span,
                                    "give each field its own name", code="E0103")
            seen.add(f.name)
        return (tuple(fields), self.sp(c[0], c[-1]))

    def type_record_lit(self, c):
        fields, span = c[0]
        return A.TypeRecord(fields, span)

    def _separated(self, c, kind, what: str) -> list:
        """Items of a brace list; two items on one line need a separator between them."""
        out = []
        sep = True
        for x in c:
            if isinstance(x, Token):
                if x.type in ("COMMA", "SEMI", "_NL"):
                    sep = True
                continue
            if not sep and out and out[-1].span.end_line == x.span.line:
                raise SyntaxProblem(
                    f"expected `,` or a newline between {what}", x.span)
            out.append(x)
            sep = False
        return out

    # -- statements ------------------------------------------------------------
    def block(self, c):
        stmts = []
        attrs: list[A.Attr] = []
        sep = True
        last_end_line = None
        for x in c[1:-1]:
            if isinstance(x, Token):
                if x.type == "SEMI":
                    sep = True
                continue
            if isinstance(x, A.Attr):
                attrs.append(x)
                continue
            first_line = attrs[0].span.line if attrs else x.span.line
            if not sep and last_end_line == first_line:
                raise SyntaxProblem("expected `;` or a newline between statements", x.span)
            if attrs:
                if isinstance(x, _STMT_ATTR_OK):
                    x = replace(x, attrs=tuple(attrs))
                else:
                    for a in attrs:
                        self.soft.append(error(
                            "E0301", f"attribute `@{a.name}` cannot be applied to this statement",
                            a.span, help="attributes go on `let`, calls, `for`, `parallel`, "
                                         "`transaction` and `try`"))
                attrs = []
            stmts.append(x)
            last_end_line = x.span.end_line
            sep = False
        if attrs:
            raise SyntaxProblem("an attribute must be followed by a statement", attrs[-1].span)
        return A.Block(tuple(stmts), self.sp(c[0], c[-1]))

    def let_stmt(self, c):
        i = 2
        typ = None
        if c[i].type == "COLON":
            typ = c[i + 1]
            i += 2
        value = c[i + 1]
        when = c[i + 3] if len(c) > i + 2 else None
        return A.Let(str(c[1]), self.ts(c[1]), typ, value, when, (), self.sp(c[0], c[-1]))

    def try_else(self, c):
        return A.TryElse(c[1], c[3], self.sp(c[0], c[3]))

    def wait_expr(self, c):
        signal = self._plain_string(c[1])
        timeout = None
        if len(c) > 2:
            if str(c[2]) != "timeout":
                raise SyntaxProblem(f"expected `timeout` after the signal name, found `{c[2]}`",
                                    self.ts(c[2]))
            timeout = c[3]
        return A.Wait(signal, timeout, self.ts(c[1]), self.sp(c[0], c[-1]))

    def wait_stmt(self, c):
        return A.ExprStmt(c[0], None, (), c[0].span)

    def call_stmt(self, c):
        expr = c[0]
        if not isinstance(expr, A.Call):
            raise SyntaxProblem(
                "expected a statement; an expression on its own line must be a call",
                expr.span, help="bind the value with `let name = ...`, or call a node")
        when = c[2] if len(c) > 1 else None
        return A.ExprStmt(expr, when, (), self.sp(expr, c[-1]))

    def if_stmt(self, c):
        branches = []
        orelse = None
        i = 0
        while i < len(c):
            tok = c[i]
            if tok.type == "IF":
                branches.append((c[i + 1], c[i + 2]))
                i += 3
            elif tok.type == "ELSE":
                nxt = c[i + 1]
                if isinstance(nxt, Token):  # else if
                    i += 1
                else:
                    orelse = nxt
                    i += 2
            else:
                i += 1
        return A.If(tuple(branches), orelse, self.sp(c[0], c[-1]))

    def for_stmt(self, c):
        return A.For(str(c[1]), self.ts(c[1]), c[3], c[4], (), self.sp(c[0], c[4]))

    def yield_stmt(self, c):
        return A.Yield(c[1], self.sp(c[0], c[1]))

    def parallel_stmt(self, c):
        return A.Parallel(c[1], (), self.sp(c[0], c[1]))

    def tx_kind(self, c):
        tok = c[0]
        if tok.type == "NAME" and str(tok) != "saga":
            raise SyntaxProblem(f"unknown transaction pattern `{tok}`", self.ts(tok),
                                help="write `transaction saga { }` or `transaction 2pc { }`")
        return tok

    def tx_stmt(self, c):
        kind = str(c[1]) if len(c) > 2 else None
        return A.Transaction(kind, c[-1], (), self.sp(c[0], c[-1]))

    def try_stmt(self, c):
        catches = tuple(x for x in c[2:] if isinstance(x, A.Catch))
        return A.Try(c[1], catches, (), self.sp(c[0], c[-1]))

    def catch_clause(self, c):
        kinds = c[1]
        binding = binding_span = None
        if len(c) > 3:
            binding, binding_span = str(c[3]), self.ts(c[3])
        return A.Catch(kinds, binding, binding_span, c[-1], self.sp(c[0], c[-1]))

    def catch_kinds(self, c):
        return tuple((str(t), self.ts(t)) for t in c if t.type == "NAME")

    def sleep_stmt(self, c):
        return A.Sleep(c[1], self.sp(c[0], c[1]))

    def emit_stmt(self, c):
        name = self._plain_string(c[1])
        value = c[2] if len(c) > 2 else None
        return A.Emit(name, value, self.sp(c[0], c[-1]))

    def checkpoint_stmt(self, c):
        return A.Checkpoint(self.ts(c[0]))

    def return_stmt(self, c):
        return A.Return(c[1] if len(c) > 1 else None, self.sp(c[0], c[-1]))

    def fail_stmt(self, c):
        value = c[1]
        if (isinstance(value, A.Call) and isinstance(value.func, A.Name)
                and len(value.args) == 1 and value.args[0].name is None):
            return A.Fail(value.func.id, value.func.span, value.args[0].value,
                          self.sp(c[0], value))
        return A.Fail(None, None, value, self.sp(c[0], value))

    # -- expressions -----------------------------------------------------------
    def expr_only(self, c):
        return c[0]

    def if_expr(self, c):
        return A.IfExpr(c[1], c[3], c[5], self.sp(c[0], c[5]))

    def binary(self, c):
        left, op, right = c
        return A.Binary(str(op), left, right, self.ts(op), self.sp(left, right))

    def unary(self, c):
        return A.Unary(str(c[0]), c[1], self.sp(c[0], c[1]))

    def attribute(self, c):
        return A.Attribute(c[0], str(c[2]), c[1].type == "QDOT", self.ts(c[2]),
                           self.sp(c[0], c[2]))

    def index(self, c):
        return A.Index(c[0], c[2], self.sp(c[0], c[3]))

    def call(self, c):
        return A.Call(c[0], c[2], self.sp(c[0], c[3]))

    def args(self, c):
        out = tuple(x for x in c if isinstance(x, A.Arg))
        seen: set[str] = set()
        positional_done = False
        for a in out:
            if a.name is None:
                if positional_done:
                    raise SyntaxProblem("a positional argument cannot follow a named one",
                                        a.span)
            else:
                positional_done = True
                if a.name in seen:
                    raise SyntaxProblem(f"argument `{a.name}` is given twice", a.name_span)
                seen.add(a.name)
        return out

    def named_arg(self, c):
        return A.Arg(str(c[0]), c[2], self.ts(c[0]), self.sp(c[0], c[2]))

    def pos_arg(self, c):
        return A.Arg(None, c[0], None, c[0].span)

    def name(self, c):
        return A.Name(str(c[0]), self.ts(c[0]))

    def int_lit(self, c):
        return A.Literal(int(str(c[0]).replace("_", "")), "int", self.ts(c[0]))

    def float_lit(self, c):
        return A.Literal(float(str(c[0]).replace("_", "")), "float", self.ts(c[0]))

    def duration_lit(self, c):
        return A.Literal(parse_duration(str(c[0])), "duration", self.ts(c[0]))

    def true_lit(self, c):
        return A.Literal(True, "bool", self.ts(c[0]))

    def false_lit(self, c):
        return A.Literal(False, "bool", self.ts(c[0]))

    def null_lit(self, c):
        return A.Literal(None, "null", self.ts(c[0]))

    def paren(self, c):
        return c[1]

    def list_lit(self, c):
        return A.ListLit(tuple(self.nodes(c)), self.sp(c[0], c[-1]))

    def comprehension(self, c):
        cond = c[7] if len(c) > 8 else None
        return A.Comprehension(c[1], str(c[3]), self.ts(c[3]), c[5], cond,
                               self.sp(c[0], c[-1]))

    def record_lit(self, c):
        entries = self._separated(c[1:-1], object, "fields")
        span = self.sp(c[0], c[-1])
        fields = [e for e in entries if isinstance(e, A.FieldInit)]
        maps = [e for e in entries if isinstance(e, A.MapEntry)]
        if fields and maps:
            raise SyntaxProblem(
                "a literal mixes record fields (`name: v`) and map keys (`\"k\": v`)",
                maps[0].span, help="quote every key for a map, or none for a record")
        seen: set[str] = set()
        for e in entries:
            key = e.name if isinstance(e, A.FieldInit) else e.key
            if key in seen:
                raise SyntaxProblem(f"`{key}` appears twice in this literal",
                                    e.name_span if isinstance(e, A.FieldInit) else e.key_span)
            seen.add(key)
        if maps:
            return A.MapLit(tuple(maps), span)
        return A.RecordLit(tuple(fields), span)

    def field_init(self, c):
        return A.FieldInit(str(c[0]), c[2], self.ts(c[0]), self.sp(c[0], c[2]))

    def map_entry(self, c):
        return A.MapEntry(self._plain_string(c[0]), c[2], self.ts(c[0]), self.sp(c[0], c[2]))

    def string_lit(self, c):
        return self._string(c[0])

    # -- strings ---------------------------------------------------------------
    def _plain_string(self, tok: Token) -> str:
        node = self._string(tok)
        if not isinstance(node, A.Literal):
            raise SyntaxProblem("this string cannot contain `${...}` interpolation",
                                self.ts(tok))
        return node.value

    def _abs(self, line: int, col: int) -> tuple[int, int]:
        """A position in the text being parsed → a position in the source file."""
        if line == 1:
            col += self.coff
        return line + self.loff, col

    def _string(self, tok: Token):
        raw = str(tok)
        span = self.ts(tok)
        if raw.startswith('"""'):
            rbody, start_col = raw[3:-3], tok.column + 3
            if "\\" not in rbody and "${" not in rbody:
                return A.Literal(_dedent_long(rbody), "str", span)
            body, index = _dedent_long_mapped(rbody)
        else:
            rbody, start_col = raw[1:-1], tok.column + 1
            if "\\" not in rbody and "${" not in rbody:
                return A.Literal(rbody, "str", span)
            body, index = rbody, None

        def at(k: int) -> tuple[int, int]:
            """Source line and column of ``body[k]`` (``k == len(body)``: the closing quote)."""
            r = index[k] if index is not None else k
            nl = rbody.count("\n", 0, r)
            if nl == 0:
                return self._abs(tok.line, start_col + r)
            return self._abs(tok.line + nl, r - rbody.rfind("\n", 0, r))

        def at_span(k: int, width: int) -> A.Span:
            line, col = at(k)
            return A.Span(span.file, line, col, line, col + width)

        parts: list[Any] = []
        buf: list[str] = []
        i, n = 0, len(body)
        while i < n:
            ch = body[i]
            if ch == "\\":
                nxt = body[i + 1] if i + 1 < n else ""
                if nxt in _ESCAPES:
                    buf.append(_ESCAPES[nxt])
                    i += 2
                    continue
                if nxt == "u" and i + 2 < n and body[i + 2] == "{":
                    close = body.find("}", i + 3)
                    digits = body[i + 3:close] if close > 0 else ""
                    if close < 0 or not re.fullmatch(r"[0-9A-Fa-f]{1,6}", digits) \
                            or int(digits, 16) > 0x10FFFF:
                        raise SyntaxProblem("bad unicode escape; write `\\u{1F600}`",
                                            at_span(i, 2))
                    buf.append(chr(int(digits, 16)))
                    i = close + 1
                    continue
                raise SyntaxProblem(
                    f"unknown escape `\\{nxt}` in string", at_span(i, 2),
                    help="escapes are \\n \\t \\r \\\" \\\\ \\$ and \\u{...}")
            if ch == "$" and i + 1 < n and body[i + 1] == "{":
                end = _match_brace(body, i + 2)
                if end < 0:
                    raise SyntaxProblem("unclosed `${` in string", span)
                inner = body[i + 2:end]
                if not inner.strip():
                    raise SyntaxProblem("empty `${}` in string", at_span(i, 3))
                if buf:
                    parts.append("".join(buf))
                    buf = []
                if index is not None and "\n" in inner:
                    # dedenting removed indentation inside the expression: parse the source
                    # text instead (only whitespace differs), so its positions stay true
                    inner = rbody[index[i + 2]:index[end]]
                line, col = at(i + 2)
                parts.append(self.parse_expr(inner, line, col))
                i = end + 1
                continue
            buf.append(ch)
            i += 1
        if buf:
            parts.append("".join(buf))
        if not parts:
            return A.Literal("", "str", span)
        if len(parts) == 1 and isinstance(parts[0], str):
            return A.Literal(parts[0], "str", span)
        return A.Interpolated(tuple(parts), span)


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$", "0": "\0"}
_DURATION_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


from ..durations import format_duration, parse_duration  # noqa: E402,F401


def _dedent_long(body: str) -> str:
    if body.startswith("\r\n"):
        body = body[2:]
    elif body.startswith("\n"):
        body = body[1:]
    lines = body.split("\n")
    if len(lines) > 1 and not lines[-1].strip():
        lines[-1] = ""
    return textwrap.dedent("\n".join(lines))


def _dedent_long_mapped(rbody: str) -> tuple[str, list[int]]:
    """:func:`_dedent_long`, plus where each character of the result sits in ``rbody``.

    ``index[k]`` is the offset in ``rbody`` of ``result[k]``; one extra entry maps the end.
    Dedenting only drops the first newline and a prefix of each line, so every line of the
    result is a suffix of the matching line of the source.
    """
    out = _dedent_long(rbody)
    skip = 2 if rbody.startswith("\r\n") else 1 if rbody.startswith("\n") else 0
    src_lines = rbody[skip:].split("\n")
    out_lines = out.split("\n")
    index: list[int] = []
    base = skip
    if len(src_lines) != len(out_lines):  # cannot happen; keep positions sane anyway
        return out, [min(skip + k, len(rbody)) for k in range(len(out) + 1)]
    for src, dst in zip(src_lines, out_lines):
        off = len(src) - len(dst) if src.endswith(dst) else 0
        index.extend(range(base + off, base + off + len(dst)))
        index.append(base + len(src))  # the newline, or the end of the body
        base += len(src) + 1
    return out, index


def _match_brace(text: str, i: int) -> int:
    depth = 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


# ---------------------------------------------------------------------------- errors

_WORDS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "DURATION": "a duration",
    "STRING": "a string", "LONG_STRING": "a string", "_NL": "a newline", "$END": "end of file",
    "TWOPC": "`2pc`", "ARROW": "`->`", "QQ": "`??`", "QDOT": "`?.`", "QMARK": "`?`",
    "EQEQ": "`==`", "NE": "`!=`", "LE": "`<=`", "GE": "`>=`", "LT": "`<`", "GT": "`>`",
    "EQ": "`=`", "DSLASH": "`//`", "SLASH": "`/`", "STAR": "`*`", "PERCENT": "`%`",
    "PLUS": "`+`", "MINUS": "`-`", "DOT": "`.`", "COMMA": "`,`", "COLON": "`:`", "SEMI": "`;`",
    "AT": "`@`", "LPAR": "`(`", "RPAR": "`)`", "LSQB": "`[`", "RSQB": "`]`", "LBRACE": "`{`",
    "RBRACE": "`}`",
}
_EXPR_START = {"NAME", "INT", "FLOAT", "DURATION", "STRING", "LONG_STRING", "TRUE", "FALSE",
               "NULL", "LPAR", "LSQB", "LBRACE", "MINUS", "NOT", "IF"}
_BINARY_OPS = {"QQ", "OR", "AND", "EQEQ", "NE", "LT", "LE", "GT", "GE", "IN", "PLUS", "MINUS",
               "STAR", "SLASH", "DSLASH", "PERCENT", "DOT", "QDOT", "LSQB", "LPAR"}


def _word(term: str) -> str:
    if term in _WORDS:
        return _WORDS[term]
    if term.isupper():
        return f"`{term.lower()}`"
    return term


def _found(tok: Token) -> str:
    if tok.type == "$END":
        return "end of file"
    if tok.type == "_NL":
        return "the end of the line"
    if tok.type in ("STRING", "LONG_STRING"):
        return "a string"
    if tok.type in _WORDS and tok.type not in ("NAME", "INT", "FLOAT", "DURATION"):
        return _WORDS[tok.type]
    if tok.type.isupper() and tok.type not in _WORDS:
        return f"keyword `{tok}`"
    return f"`{tok}`"


def _expected_words(expected: set[str]) -> str:
    exp = set(expected)
    words: list[str] = []
    if len(exp & _EXPR_START) >= 6:
        words.append("an expression")
        exp -= _EXPR_START
        exp -= _BINARY_OPS
    elif len(exp & _BINARY_OPS) >= 8:
        words.append("an operator")
        exp -= _BINARY_OPS
    for t in sorted(exp, key=lambda t: (t != "NAME", t)):
        w = _word(t)
        if w not in words:
            words.append(w)
    if not words:
        return "something else"
    if len(words) > 5:
        words = words[:5] + ["…"]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


_KEYWORD_TOKENS = None


class Parser:
    """Parses kflow source; one per process (see :func:`get_parser`)."""

    def __init__(self) -> None:
        self.builder = _Builder()
        self.postlex = _PostLex()
        self.comments: list[A.Comment] = []
        self._lock = threading.RLock()
        self.builder.parse_expr = self._parse_interpolation
        self.lark = Lark(
            GRAMMAR.read_text(encoding="utf-8"),
            parser="lalr",
            lexer="contextual",
            start=["start", "expr_only"],
            postlex=self.postlex,
            transformer=self.builder,
            lexer_callbacks={"COMMENT": self._on_comment},
            maybe_placeholders=False,
            cache=True,
        )

    def _on_comment(self, tok: Token):
        self.comments.append(A.Comment(str(tok), self.builder.ts(tok)))
        return tok

    def _parse_interpolation(self, text: str, line: int, col: int):
        b = self.builder
        pl = self.postlex
        saved = (b.loff, b.coff, pl.stack, pl.history, pl.pending)
        # `line`/`col` is where the inner text starts in the source file; its tokens are
        # numbered from line 1, column 1, so shift them there
        b.loff = line - 1
        b.coff = col - 1
        try:
            return self._parse_expr_text(text)
        finally:
            b.loff, b.coff = saved[0], saved[1]
            pl.stack, pl.history, pl.pending = saved[2], saved[3], saved[4]

    def _parse_expr_text(self, text: str):
        try:
            return self.lark.parse(text, start="expr_only")
        except UnexpectedInput as exc:
            tok = getattr(exc, "token", None)
            b = self.builder
            if tok is not None and getattr(tok, "line", None):
                span = b.ts(tok)
            else:
                span = A.Span(b.file, 1 + b.loff, 1 + b.coff, 1 + b.loff, 2 + b.coff)
            raise SyntaxProblem(f"bad expression in `${{...}}`: {text.strip()!r}", span)

    def parse(self, text: str, path: str) -> tuple[A.Module | None, list[Diagnostic]]:
        if text.startswith("\ufeff"):
            # a leading byte order mark is not part of the program (as in Python). It is
            # lexed as a space, so it still counts as column 1 of line 1: positions stay
            # true to the text every other tool holds (renderer, `kflow fmt`, the LSP).
            text = " " + text[1:]
        with self._lock:
            b = self.builder
            b.file, b.loff, b.coff, b.soft = path, 0, 0, []
            self.comments = []
            try:
                items = self.lark.parse(text, start="start")
            except SyntaxProblem as exc:
                return None, [error(exc.code, exc.message, exc.span, help=exc.help)]
            except UnexpectedInput as exc:
                return None, [self._syntax_error(exc, text, path)]
            except RecursionError:
                span = A.Span(path, 1, 1, 1, 2)
                return None, [error("E0001", "the program nests too deeply to parse", span)]
            try:
                module = self._module(items, path)
            except SyntaxProblem as exc:
                return None, [error(exc.code, exc.message, exc.span, help=exc.help)]
            return module, list(b.soft)

    def _module(self, items: list, path: str) -> A.Module:
        comments = tuple(self.comments)
        docs = {c.span.line: c.text[2:].strip() if c.text[2:3] == " " or c.text == "##"
                else c.text[2:].rstrip()
                for c in comments if c.text.startswith("##") and c.span.column >= 1}
        module_decl = None
        imports: list[A.Import] = []
        decls: list[A.Decl] = []
        attrs: list[A.Attr] = []
        prev_end = None
        for item in items:
            if isinstance(item, A.Attr):
                attrs.append(item)
                continue
            first_line = attrs[0].span.line if attrs else item.span.line
            if prev_end is not None and first_line == prev_end:
                raise SyntaxProblem("expected a newline between declarations", item.span)
            prev_end = item.span.end_line
            if isinstance(item, (A.ModuleDecl, A.Import)):
                if attrs:
                    raise SyntaxProblem("attributes cannot be applied here", attrs[0].span)
                if isinstance(item, A.ModuleDecl):
                    if module_decl is not None or imports or decls:
                        raise SyntaxProblem("`module` must be the first declaration",
                                            item.span)
                    module_decl = item
                else:
                    imports.append(item)
                continue
            doc_lines = []
            ln = first_line - 1
            while ln in docs:
                doc_lines.append(docs[ln])
                ln -= 1
            doc = "\n".join(reversed(doc_lines)) if doc_lines else None
            decls.append(replace(item, attrs=tuple(attrs), doc=doc))
            attrs = []
        if attrs:
            raise SyntaxProblem("an attribute must be followed by a declaration",
                                attrs[-1].span)
        name = module_decl.name if module_decl else Path(path).stem
        span = A.Span(path, 1, 1, items[-1].span.end_line if items else 1, 1)
        return A.Module(path, name, module_decl, tuple(imports), tuple(decls), comments, span)

    def _syntax_error(self, exc: UnexpectedInput, text: str, path: str) -> Diagnostic:
        stack = self.postlex.stack
        history = self.postlex.history
        at_newline, after_newline = self._line_ended(exc, path)
        if at_newline is not None:
            return at_newline
        if isinstance(exc, UnexpectedCharacters):
            span = A.Span(path, exc.line, exc.column, exc.line, exc.column + 1)
            ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
            if ch == '"':
                return error("E0001", "unterminated string", span,
                             help="close the string with `\"` on the same line, or use "
                                  "`\"\"\"` for a multi-line string")
            if ch == "!":
                return error("E0001", "unexpected `!`", span, help="write `not x` for negation")
            if ch == "&" or ch == "|":
                word = "and" if ch == "&" else "or"
                return error("E0001", f"unexpected `{ch}`", span, help=f"write `{word}`")
            return error("E0001", f"unexpected character `{ch}`", span)
        if isinstance(exc, UnexpectedEOF):
            tok = Token("$END", "", 0, len(text.splitlines()) or 1, 1)
            expected = set(exc.expected)
        else:
            assert isinstance(exc, UnexpectedToken)
            tok = exc.token
            expected = set(exc.expected)
        if after_newline is not None:
            expected = after_newline
        else:
            # the contextual lexer reports what its state can lex, which always includes a
            # newline (`always_accept`); the parse table says what the parser can take
            expected = _table_expected(exc) or expected
        if tok.type == "$END" or not getattr(tok, "line", None):
            lines = text.splitlines() or [""]
            line = len(lines)
            col = len(lines[-1]) + 1
            span = A.Span(path, line, col, line, col)
            if stack:
                opener = stack[-1]
                return error("E0001",
                             f"unclosed `{_OPENERS[opener.type]}` opened at "
                             f"{opener.line}:{opener.column}",
                             A.Span(path, opener.line, opener.column, opener.line,
                                    opener.column + 1),
                             help=f"add the missing `{_closing(opener.type)}`")
            return error("E0001", f"unexpected end of file; expected {_expected_words(expected)}",
                         span)
        span = A.Span(path, tok.line, tok.column, tok.end_line or tok.line,
                      tok.end_column or tok.column + 1)
        prev = None
        for h in reversed(history[:-1] if history and history[-1] is tok else history):
            prev = h
            break
        if after_newline is not None:
            prev = self.postlex.pending
        found = _found(tok)
        message, help = self._catalogue(prev, tok, expected, stack)
        if message is None:
            message = f"expected {_expected_words(expected)}, found {found}"
        return error("E0001", message, span, help=help)

    def _line_ended(self, exc: UnexpectedInput, path: str):
        """The error when a newline was lexed but the parser had not taken it yet.

        The post-lexer holds each newline back until it has seen the next token (to drop
        it before `else`/`catch`), and the contextual lexer reads that token in the state
        from before the newline. So a statement cut short by the end of its line fails on
        the first token of the *next* line. Work out from the parse table whether the
        newline itself was the problem; if so, return the error, said at the line that
        ended. Otherwise return ``(None, expected)``: ``expected`` is what the parser wants
        after the newline (None when no newline was pending).
        """
        nl = self.postlex.pending
        tok = getattr(exc, "token", None)
        if tok is not None and tok.type == "_NL":
            nl = tok
        state = getattr(exc, "state", None)
        if nl is None or state is None:
            return None, None
        try:
            states = state.parse_conf.states
            stack = list(state.state_stack)
        except AttributeError:
            return None, None
        if tok is not nl:
            after = _feed(states, stack, "_NL")
            if after is not None:
                # the newline was fine; the next token is the problem
                return None, _acceptable(states, after)
        expected = _acceptable(states, stack) - {"_NL"}
        history = [h for h in self.postlex.history if h is not nl]
        prev = history[-1] if history else None
        if prev is not None and (prev.end_line or prev.line) == nl.line:
            line, col = nl.line, prev.end_column or prev.column + len(prev)
        else:
            line, col = nl.line, nl.column
        span = A.Span(path, line, col, line, col + 1)
        message, help = self._catalogue(prev, nl, expected, self.postlex.stack)
        if message is None:
            message = f"expected {_expected_words(expected)}, found the end of the line"
        return error("E0001", message, span, help=help), None

    def _catalogue(self, prev: Token | None, tok: Token, expected: set[str], stack):
        """The common mistakes, said the way a person would."""
        p = prev.type if prev is not None else None
        t = tok.type
        kw = t.isupper() and t not in _WORDS and t not in ("NAME", "INT", "FLOAT", "DURATION",
                                                          "STRING", "LONG_STRING")
        if p == "LET" and "NAME" in expected:
            if kw:
                return (f"`let` needs a name; `{tok}` is a reserved keyword",
                        f"pick another name, e.g. `{tok}_`")
            return "`let` needs a name", "write `let name = value`"
        if p == "FOR" and "NAME" in expected:
            return "`for` needs a loop variable name", "write `for item in items { ... }`"
        if p in ("NODE", "WORKFLOW", "TYPE", "ENUM", "CONST") and "NAME" in expected:
            what = prev.value
            if kw:
                return f"`{what}` needs a name; `{tok}` is a reserved keyword", None
            return f"`{what}` needs a name", None
        if "NAME" in expected and kw and len(expected) <= 3:
            return f"expected a name, found reserved keyword `{tok}`", None
        if p in ("EQ", "RETURN", "COLON", "WHEN", "IN", "YIELD", "SLEEP") \
                and len(expected & _EXPR_START) >= 6 and t in ("_NL", "RBRACE", "$END", "SEMI",
                                                                "COMMA", "RPAR", "RSQB"):
            if t == "_NL":
                return f"expected an expression after `{prev}`, found the end of the line", None
            return f"expected an expression after `{prev}`", None
        if p is not None and p in _BINARY_OPS - {"DOT", "QDOT", "LSQB", "LPAR"} \
                and len(expected & _EXPR_START) >= 6:
            return f"expected an expression after `{prev}`, found {_found(tok)}", None
        if t in _CLOSERS and stack and stack[-1].type != _CLOSERS[t]:
            opener = stack[-1]
            return (f"mismatched `{tok}`: `{_OPENERS[opener.type]}` opened at "
                    f"{opener.line}:{opener.column} is still open",
                    f"close it with `{_closing(opener.type)}` first")
        if t in _CLOSERS and not stack:
            return f"unexpected `{tok}` with nothing open", None
        if t == "EQ" and "EQEQ" in expected:
            return "unexpected `=`; to compare values write `==`", None
        if t == "EQ" and p == "NAME" and not expected & {"EQ", "COLON"} \
                and stack and stack[-1].type == "LBRACE":
            return ("unexpected `=`; there is no assignment statement",
                    f"bind a name with `let {prev} = ...`")
        if p in ("NAME",) and t == "NAME" and "LPAR" in expected and "EQ" not in expected \
                and "_NL" in expected:
            return (f"expected an operator or a newline, found `{tok}`",
                    "statements are separated by newlines or `;`")
        return None, None


def _table_expected(exc: UnexpectedInput) -> set[str] | None:
    state = getattr(exc, "state", None)
    try:
        return _acceptable(state.parse_conf.states, list(state.state_stack))
    except (AttributeError, KeyError, IndexError):
        return None


def _acceptable(states, stack: list) -> set[str]:
    """The terminals the parser can really take next with this state stack.

    The table row of the top state can list look-aheads LALR merged in from other
    contexts; feeding each one through the reductions keeps only the real ones. End of
    file is left out unless nothing else fits (after a complete item it is always allowed,
    and saying so does not help).
    """
    row = [t for t in states[stack[-1]] if t.isupper()]
    out = {t for t in row if t != "$END" and _feed(states, stack, t) is not None}
    if not out:
        out = set(row)
    return out


def _feed(states, stack: list, term: str) -> list | None:
    """The LALR state stack after taking terminal ``term`` (None if it is refused).

    Mirrors ``ParserState.feed_token`` on the parse table alone: no callbacks, no values.
    """
    stack = list(stack)
    while True:
        act = states[stack[-1]].get(term)
        if act is None:
            return None
        action, arg = act
        if action is Shift:
            stack.append(arg)
            return stack
        size = len(arg.expansion)
        if size:
            del stack[-size:]
        goto = states[stack[-1]].get(arg.origin.name)
        if goto is None:
            return None
        stack.append(goto[1])


def _closing(opener_type: str) -> str:
    return {"LPAR": ")", "LSQB": "]", "LBRACE": "}"}[opener_type]


_PARSER: Parser | None = None
_PARSER_LOCK = threading.Lock()


def get_parser() -> Parser:
    global _PARSER
    if _PARSER is None:
        with _PARSER_LOCK:
            if _PARSER is None:
                _PARSER = Parser()
    return _PARSER


def parse(text: str, path: str = "<string>") -> tuple[A.Module | None, list[Diagnostic]]:
    """Parse one module. Returns the AST (None on a syntax error) and diagnostics."""
    return get_parser().parse(text, path)


def parse_file(path: str | Path) -> tuple[A.Module | None, list[Diagnostic]]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [error("E0001", f"the file is not valid UTF-8 ({exc.reason} at byte "
                                     f"{exc.start})", A.Span(str(path), 1, 1, 1, 1))]
    return parse(text, str(path))
