"""`kflow fmt`: the one canonical layout of a kflow file.

The formatter prints the AST back out, so the layout never depends on how the input was
spaced, and it keeps every comment on the line it was on:

* 2-space indentation, one statement per line, spaces around binary operators;
* a bracketed list (call arguments, parameters, list/record/map literals, record types)
  stays on one line when it fits in 100 columns, else it gets one item per line with a
  trailing comma. A comment inside brackets always breaks them;
* the body of a `type X { ... }` or `enum E { ... }` declaration stays on one line
  (`{ a: int, b: str }`) when written on one line and it fits, else one field per line;
* attributes one per line above what they apply to; exactly one blank line between
  top-level declarations (consecutive imports, and consecutive `const`s, may stay
  together); inside blocks a run of blank lines becomes one;
* literals are printed exactly as written (`1_000`, `"\\u{1F600}"`, `\"\"\"` strings).

Safety: the output is parsed again and compared with the input (:func:`ast.same_shape`,
plus every comment); a difference raises :class:`FormatError` instead of returning text.
This module imports only the parser (no Rich), so editors and the LSP can use it cheaply.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .diagnostics import Diagnostic
from .grammar import ast as A

WIDTH = 100
STEP = 2

__all__ = ["WIDTH", "FormatError", "FormatSyntaxError", "format_source"]


class FormatError(Exception):
    """The formatter refuses: the input has errors, or the output would change meaning."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None):
        super().__init__(message)
        self.message = message
        self.diagnostics = list(diagnostics or [])

    @property
    def diagnostic(self) -> Diagnostic | None:
        return self.diagnostics[0] if self.diagnostics else None


class FormatSyntaxError(FormatError):
    """The input does not parse; ``diagnostic`` says where (E0001)."""


def format_diagnostic(d: Diagnostic) -> str:
    """``file:line:col: E0001 message`` — the one-line form `kflow fmt` prints."""
    return f"{d.span.file}:{d.span.line}:{d.span.column}: {d.code} {d.message}"


def format_source(text: str, path: str = "<string>") -> str:
    """Format kflow source. Raises :class:`FormatSyntaxError` when it does not parse
    (``.diagnostic`` is the syntax error), :class:`FormatError` if the result would not
    mean the same (a formatter bug: the input is never mangled)."""
    from .grammar.parser import parse

    module, diags = parse(text, path)
    errors = [d for d in diags if d.is_error]
    if module is None or errors:
        d = errors[0] if errors else diags[0]
        raise FormatSyntaxError(format_diagnostic(d), errors or diags)
    out = _Printer(text, module).module()
    if text.count("\r\n") * 2 > text.count("\n"):  # keep Windows line endings
        out = out.replace("\r\n", "\n").replace("\n", "\r\n")
    again, diags2 = parse(out, path)
    if again is None or any(d.is_error for d in diags2):
        where = format_diagnostic(diags2[0]) if diags2 else "?"
        raise FormatError(f"{path}: the formatted text does not parse ({where}); "
                          "file left unchanged (this is a formatter bug, please report it)")
    if not A.same_shape(module, again):
        raise FormatError(f"{path}: formatting would change the program's meaning; "
                          "file left unchanged (this is a formatter bug, please report it)")
    before = Counter(c.text.rstrip() for c in module.comments)
    after = Counter(c.text.rstrip() for c in again.comments)
    if before != after:
        raise FormatError(f"{path}: formatting would lose or duplicate a comment; "
                          "file left unchanged (this is a formatter bug, please report it)")
    return out


# ---------------------------------------------------------------------------- scanning

_SCAN = re.compile(
    r'(?P<ls>"""(?:[^"\\]|\\.|"(?!""))*""")'
    r'|(?P<s>"(?:[^"\\\n$]|\\.|\$(?!\{)|\$\{(?:[^}"\n]|"(?:[^"\\\n]|\\.)*")*\})*")'
    r"|(?P<c>\#[^\n]*)"
    r"|(?P<o>[(\[{])"
    r"|(?P<x>[)\]}])"
    r'|(?P<w>[^"\#()\[\]{}]+)'
    r"|(?P<any>.)",
    re.DOTALL,
)


@dataclass
class L:
    """One output line: indentation (spaces), code, and an end-of-line comment."""

    indent: int
    text: str
    comment: str | None = None


@dataclass
class _Comment:
    offset: int
    line: int
    text: str
    standalone: bool


_PREC_BIN = {"??": 2, "or": 3, "and": 4, "==": 6, "!=": 6, "<": 6, "<=": 6, ">": 6,
             ">=": 6, "in": 6, "+": 7, "-": 7, "*": 8, "/": 8, "//": 8, "%": 8}


def _prec(e) -> int:
    if isinstance(e, A.IfExpr):
        return 1
    if isinstance(e, A.Binary):
        return _PREC_BIN[e.op]
    if isinstance(e, A.Unary):
        return 5 if e.op == "not" else 9
    if isinstance(e, (A.Attribute, A.Index, A.Call)):
        return 10
    if isinstance(e, (A.TryElse, A.Wait, A.For)):
        return 0
    return 11


def _bin_child_prec(op: str) -> tuple[int, int]:
    p = _PREC_BIN[op]
    if op == "??":
        return 3, 2
    if p == 6:
        return 6, 7
    return p, p + 1


@dataclass
class _Item:
    """An element of a bracketed list, for :meth:`_Printer.bracketed`."""

    start: int
    end: int
    flat: str
    render: Callable[[int, int, int], list[L]]  # (indent, column, tail) -> lines


class _Printer:
    def __init__(self, text: str, module: A.Module):
        self.src = text
        self.mod = module
        self.line_starts = [0]
        for m in re.finditer("\n", text):
            self.line_starts.append(m.end())
        self.match: dict[int, int] = {}
        self.openers: dict[str, list[int]] = {"(": [], "[": [], "{": []}
        self.strings: list[int] = []
        self.string_end: dict[int, int] = {}
        stack: list[int] = []
        for m in _SCAN.finditer(text):
            kind = m.lastgroup
            if kind in ("s", "ls"):
                self.strings.append(m.start())
                self.string_end[m.start()] = m.end()
            elif kind == "o":
                stack.append(m.start())
                self.openers[m.group()].append(m.start())
            elif kind == "x" and stack:
                self.match[stack.pop()] = m.start()
        cs = []
        for c in module.comments:
            off = self.off(c.span.line, c.span.column)
            before = text[self.line_starts[c.span.line - 1]:off]
            cs.append(_Comment(off, c.span.line, c.text.rstrip(), not before.strip()))
        cs.sort(key=lambda c: c.offset)
        self.comments = cs
        self.c_offsets = [c.offset for c in cs]
        self.claimed = [False] * len(cs)
        self.low = 0

    # -- positions -------------------------------------------------------------------
    def off(self, line: int, col: int) -> int:
        return self.line_starts[line - 1] + col - 1

    def start(self, node) -> int:
        s = node.span if not isinstance(node, A.Span) else node
        return self.off(s.line, s.column)

    def end(self, node) -> int:
        s = node.span if not isinstance(node, A.Span) else node
        return self.off(s.end_line, s.end_column)

    def line_of(self, off: int) -> int:
        return bisect.bisect_right(self.line_starts, off)

    def line_end(self, line: int) -> int:
        if line < len(self.line_starts):
            return self.line_starts[line] - 1
        return len(self.src)

    def raw(self, span: A.Span) -> str:
        return self.src[self.start(span):self.end(span)]

    def next_opener(self, ch: str, after: int) -> int:
        lst = self.openers[ch]
        i = bisect.bisect_left(lst, after)
        return lst[i]

    def next_string(self, after: int) -> str:
        i = bisect.bisect_left(self.strings, after)
        s = self.strings[i]
        return self.src[s:self.string_end[s]]

    def blank_between(self, a: int, b: int) -> bool:
        """Is a source line strictly between lines ``a`` and ``b`` blank?"""
        for ln in range(a + 1, b):
            s, e = self.line_starts[ln - 1], self.line_end(ln)
            if not self.src[s:e].strip():
                return True
        return False

    # -- comments ---------------------------------------------------------------------
    def take(self, lo: int, hi: int) -> list[_Comment]:
        """Claim every unclaimed comment with ``lo <= offset < hi``, in order."""
        out = []
        while self.low < len(self.claimed) and self.claimed[self.low]:
            self.low += 1
        i = max(self.low, bisect.bisect_left(self.c_offsets, lo))
        while i < len(self.comments) and self.comments[i].offset < hi:
            if not self.claimed[i]:
                self.claimed[i] = True
                out.append(self.comments[i])
            i += 1
        return out

    def has_comment(self, lo: int, hi: int) -> bool:
        i = bisect.bisect_left(self.c_offsets, lo)
        while i < len(self.comments) and self.comments[i].offset < hi:
            if not self.claimed[i]:
                return True
            i += 1
        return False

    def claim_end(self, end: int, nxt: int) -> int:
        return min(nxt, self.line_end(self.line_of(max(end - 1, 0))) + 1) if nxt > end else end

    def attach(self, lines: list[L], cs: list[_Comment], first: int, last: int) -> list[_Comment]:
        """Put comments from source lines ``first..last`` at the ends of ``lines``: the
        first source line's on the first output line, the last's on the last. Returns the
        ones with no such place (the caller prints them on their own line, above)."""
        hoist = []
        for c in cs:
            if c.line == last and lines[-1].comment is None:
                lines[-1].comment = c.text
            elif c.line == first and lines[0].comment is None:
                lines[0].comment = c.text
            else:
                hoist.append(c)
        return hoist

    def comment_lines(self, cs: list[_Comment], ind: int, prev_line: int | None,
                      out: list[L]) -> int | None:
        """Print standalone comments, keeping (at most one) blank line between groups."""
        for c in cs:
            if prev_line is not None and self.blank_between(prev_line, c.line):
                out.append(L(0, ""))
            out.append(L(ind, "", c.text))
            prev_line = c.line
        return prev_line

    # -- helpers ------------------------------------------------------------------------
    @staticmethod
    def text_lines(text: str) -> list[L]:
        parts = text.split("\n")
        return [L(0, parts[0])] + [L(0, p) for p in parts[1:]]

    @staticmethod
    def fits(col: int, text: str, tail: int) -> bool:
        if "\n" in text:
            return col + len(text.split("\n", 1)[0]) <= WIDTH
        return col + len(text) + tail <= WIDTH

    @staticmethod
    def join(a: list[L], b: list[L]) -> list[L]:
        last = a[-1]
        merged = L(last.indent, last.text + b[0].text, b[0].comment)
        return a[:-1] + [merged] + b[1:]

    @staticmethod
    def col_after(lines: list[L], col: int) -> int:
        if len(lines) == 1:
            return col + len(lines[0].text)
        return lines[-1].indent + len(lines[-1].text)

    def cat(self, col: int, ind: int, tail: int, *parts) -> list[L]:
        """Concatenate strings and renderers ``(ind, col, tail) -> lines`` on one line."""
        out: list[L] = [L(0, "")]
        pieces = list(parts)
        for i, p in enumerate(pieces):
            rest = sum(len(q) for q in pieces[i + 1:] if isinstance(q, str))
            if isinstance(p, str):
                out[-1].text += p
            else:
                cur = self.col_after(out, col)
                out = self.join(out, p(ind, cur, tail + rest))
        return out

    # -- bracketed lists --------------------------------------------------------------
    def bracketed(self, items: list[_Item], open_off: int, close_off: int, opener: str,
                  closer: str, ind: int, col: int, tail: int, *, sep: str = ",",
                  spaced: bool = False, keep_broken: bool = False) -> list[L]:
        has_c = self.has_comment(open_off + 1, close_off)
        if not items and not has_c:
            return [L(0, opener + closer)]
        if spaced:
            flat = f"{opener} " + ", ".join(i.flat for i in items) + f" {closer}"
        else:
            flat = opener + ", ".join(i.flat for i in items) + closer
        broken = keep_broken and "\n" in self.src[open_off:close_off]
        if not has_c and not broken and self.fits(col, flat, tail):
            return self.text_lines(flat)
        out = [L(0, opener)]
        inner = ind + STEP
        first_start = items[0].start if items else close_off
        opener_line = self.line_of(open_off)
        if self.line_of(first_start) > opener_line:
            cs = self.take(open_off, self.line_end(opener_line) + 1)
            for c in cs:
                if c.standalone or out[0].comment is not None:
                    out.append(L(inner, "", c.text))
                else:
                    out[0].comment = c.text
        for k, it in enumerate(items):
            for c in self.take(open_off, it.start):
                out.append(L(inner, "", c.text))
            lines = it.render(inner, inner, len(sep))
            lines[0].indent = inner
            lines[-1].text += sep
            nxt = items[k + 1].start if k + 1 < len(items) else close_off
            cs = self.take(it.start, self.claim_end(it.end, nxt))
            hoist = self.attach(lines, cs, self.line_of(it.start), self.line_of(max(it.end - 1, 0)))
            out.extend(L(inner, "", c.text) for c in hoist)
            out.extend(lines)
        for c in self.take(open_off, close_off):
            out.append(L(inner, "", c.text))
        out.append(L(ind, closer))
        return out

    # -- types -----------------------------------------------------------------------
    def flat_type(self, t) -> str:
        if isinstance(t, A.TypeName):
            return t.name
        if isinstance(t, A.TypeGeneric):
            return f"{t.name}[" + ", ".join(self.flat_type(a) for a in t.args) + "]"
        if isinstance(t, A.TypeOptional):
            inner = self.flat_type(t.inner)
            return inner + (" ?" if inner.endswith("?") else "?")
        if isinstance(t, A.TypeRecord):
            return "{" + ", ".join(self.flat_field(f) for f in t.fields) + "}"
        raise TypeError(t)

    def flat_field(self, f: A.Field) -> str:
        s = f"{f.name}: {self.flat_type(f.type)}"
        if f.default is not None:
            s += " = " + self.flat(f.default)
        return s

    def field_item(self, f: A.Field) -> _Item:
        def render(ind, col, tail, f=f):
            parts = [f"{f.name}: ", lambda i, c, t: self.ty(f.type, i, c, t)]
            if f.default is not None:
                parts += [" = ", lambda i, c, t: self.ex(f.default, i, c, t)]
            return self.cat(col, ind, tail, *parts)
        return _Item(self.start(f), self.end(f), self.flat_field(f), render)

    def ty(self, t, ind: int, col: int, tail: int) -> list[L]:
        if isinstance(t, A.TypeRecord):
            o = self.start(t)
            return self.bracketed([self.field_item(f) for f in t.fields], o, self.match[o],
                                  "{", "}", ind, col, tail)
        if isinstance(t, A.TypeOptional):
            q = " ?" if isinstance(t.inner, A.TypeOptional) else "?"
            return self.cat(col, ind, tail, lambda i, c, tl: self.ty(t.inner, i, c, tl), q)
        if isinstance(t, A.TypeGeneric):
            o = self.next_opener("[", self.start(t))
            items = [_Item(self.start(a), self.end(a), self.flat_type(a),
                           lambda i, c, tl, a=a: self.ty(a, i, c, tl)) for a in t.args]
            return self.cat(col, ind, tail, t.name, lambda i, c, tl: self.bracketed(
                items, o, self.match[o], "[", "]", i, c, tl))
        return [L(0, self.flat_type(t))]

    # -- expressions -------------------------------------------------------------------
    def flat(self, e, minprec: int = 0) -> str:
        s = self._flat(e)
        return f"({s})" if _prec(e) < minprec else s

    def _flat(self, e) -> str:
        if isinstance(e, (A.Literal, A.Interpolated)):
            return self.raw(e.span)
        if isinstance(e, A.Name):
            return e.id
        if isinstance(e, A.Binary):
            lp, rp = _bin_child_prec(e.op)
            return f"{self.flat(e.left, lp)} {e.op} {self.flat(e.right, rp)}"
        if isinstance(e, A.Unary):
            if e.op == "not":
                return "not " + self.flat(e.operand, 5)
            inner = self.flat(e.operand, 9)
            if isinstance(e.operand, A.Unary):
                inner = f"({inner})"
            return "-" + inner
        if isinstance(e, A.Attribute):
            return self.flat(e.obj, 10) + ("?." if e.optional else ".") + e.name
        if isinstance(e, A.Index):
            return f"{self.flat(e.obj, 10)}[{self.flat(e.index)}]"
        if isinstance(e, A.Call):
            return self.flat(e.func, 10) + "(" + ", ".join(self.flat_arg(a) for a in e.args) + ")"
        if isinstance(e, A.IfExpr):
            return (f"if {self.flat(e.cond, 2)} then {self.flat(e.then, 2)} "
                    f"else {self.flat(e.orelse)}")
        if isinstance(e, A.ListLit):
            return "[" + ", ".join(self.flat(x) for x in e.items) + "]"
        if isinstance(e, A.RecordLit):
            return "{" + ", ".join(f"{f.name}: {self.flat(f.value)}" for f in e.fields) + "}"
        if isinstance(e, A.MapLit):
            return "{" + ", ".join(f"{self.raw(m.key_span)}: {self.flat(m.value)}"
                                   for m in e.entries) + "}"
        if isinstance(e, A.Comprehension):
            s = f"[{self.flat(e.elem)} for {e.var} in {self.flat(e.iterable, 3)}"
            if e.cond is not None:
                s += f" if {self.flat(e.cond, 3)}"
            return s + "]"
        if isinstance(e, A.TryElse):
            return f"try {self.flat(e.primary, 10)} else {self.flat(e.fallback, 10)}"
        if isinstance(e, A.Wait):
            s = "wait " + self.raw(e.signal_span)
            if e.timeout is not None:
                s += " timeout " + self.flat(e.timeout)
            return s
        raise TypeError(f"cannot format {type(e).__name__} here")

    def flat_arg(self, a: A.Arg) -> str:
        return f"{a.name}: {self.flat(a.value)}" if a.name else self.flat(a.value)

    def arg_item(self, a: A.Arg) -> _Item:
        def render(ind, col, tail, a=a):
            if a.name:
                return self.cat(col, ind, tail, f"{a.name}: ",
                                lambda i, c, t: self.ex(a.value, i, c, t))
            return self.ex(a.value, ind, col, tail)
        return _Item(self.start(a), self.end(a), self.flat_arg(a), render)

    def expr_item(self, e) -> _Item:
        return _Item(self.start(e), self.end(e), self.flat(e),
                     lambda i, c, t, e=e: self.ex(e, i, c, t))

    def ex(self, e, ind: int, col: int, tail: int = 0, minprec: int = 0) -> list[L]:
        if _prec(e) < minprec:
            return self.cat(col, ind, tail, "(", lambda i, c, t: self.ex(e, i, c, t), ")")
        flat = self._flat(e)
        if self.fits(col, flat, tail) and not self.has_comment(self.start(e), self.end(e)):
            return self.text_lines(flat)
        sub = lambda x, p=0: (lambda i, c, t: self.ex(x, i, c, t, p))
        if isinstance(e, A.Call):
            lpar = self.next_opener("(", self.end(e.func))
            return self.cat(col, ind, tail, sub(e.func, 10), lambda i, c, t: self.bracketed(
                [self.arg_item(a) for a in e.args], lpar, self.match[lpar], "(", ")", i, c, t))
        if isinstance(e, A.ListLit):
            o = self.start(e)
            return self.bracketed([self.expr_item(x) for x in e.items], o, self.match[o],
                                  "[", "]", ind, col, tail)
        if isinstance(e, A.RecordLit):
            o = self.start(e)
            items = [_Item(self.start(f), self.end(f), f"{f.name}: {self.flat(f.value)}",
                           lambda i, c, t, f=f: self.cat(c, i, t, f"{f.name}: ", sub(f.value)))
                     for f in e.fields]
            return self.bracketed(items, o, self.match[o], "{", "}", ind, col, tail)
        if isinstance(e, A.MapLit):
            o = self.start(e)
            items = [_Item(self.start(m), self.end(m),
                           f"{self.raw(m.key_span)}: {self.flat(m.value)}",
                           lambda i, c, t, m=m: self.cat(c, i, t, f"{self.raw(m.key_span)}: ",
                                                         sub(m.value)))
                     for m in e.entries]
            return self.bracketed(items, o, self.match[o], "{", "}", ind, col, tail)
        if isinstance(e, A.Binary):
            lp, rp = _bin_child_prec(e.op)
            return self.cat(col, ind, tail, sub(e.left, lp), f" {e.op} ", sub(e.right, rp))
        if isinstance(e, A.Unary):
            if e.op == "not":
                return self.cat(col, ind, tail, "not ", sub(e.operand, 5))
            if isinstance(e.operand, A.Unary):
                return self.cat(col, ind, tail, "-(", sub(e.operand), ")")
            return self.cat(col, ind, tail, "-", sub(e.operand, 9))
        if isinstance(e, A.Attribute):
            return self.cat(col, ind, tail, sub(e.obj, 10), ("?." if e.optional else ".") + e.name)
        if isinstance(e, A.Index):
            return self.cat(col, ind, tail, sub(e.obj, 10), "[", sub(e.index), "]")
        if isinstance(e, A.IfExpr):
            return self.cat(col, ind, tail, "if ", sub(e.cond, 2), " then ", sub(e.then, 2),
                            " else ", sub(e.orelse))
        if isinstance(e, A.Comprehension):
            head = self.cat(col, ind, tail, "[", sub(e.elem), " for ", e.var, " in ",
                            sub(e.iterable, 3), *((" if ", sub(e.cond, 3)) if e.cond else ()),
                            "]")
            if len(head) > 1 or self.fits(col, head[0].text, tail):
                return head
            inner = ind + STEP
            out = [L(0, "[")]
            el = self.ex(e.elem, inner, inner)
            el[0].indent = inner
            out += el
            fr = self.cat(inner, inner, 0, f"for {e.var} in ", sub(e.iterable, 3))
            fr[0].indent = inner
            out += fr
            if e.cond is not None:
                cl = self.cat(inner, inner, 0, "if ", sub(e.cond, 3))
                cl[0].indent = inner
                out += cl
            out.append(L(ind, "]"))
            return out
        if isinstance(e, A.TryElse):
            return self.cat(col, ind, tail, "try ", sub(e.primary, 10), " else ",
                            sub(e.fallback, 10))
        if isinstance(e, A.Wait):
            parts: list = ["wait " + self.raw(e.signal_span)]
            if e.timeout is not None:
                parts += [" timeout ", sub(e.timeout)]
            return self.cat(col, ind, tail, *parts)
        return self.text_lines(flat)

    # -- attributes -----------------------------------------------------------------
    def attr_lines(self, a: A.Attr, ind: int) -> list[L]:
        if not a.args:
            return [L(ind, f"@{a.name}")]
        lpar = self.next_opener("(", self.end(a.name_span))
        lines = self.cat(ind, ind, 0, f"@{a.name}", lambda i, c, t: self.bracketed(
            [self.arg_item(x) for x in a.args], lpar, self.match[lpar], "(", ")", i, c, t))
        lines[0].indent = ind
        return lines

    def finish(self, lines: list[L], lo: int, hi: int, first: int, last: int,
               ind: int) -> list[L]:
        """Claim the comments left on an item's source lines and place them."""
        cs = self.take(lo, hi)
        hoist = self.attach(lines, cs, first, last)
        return [L(ind, "", c.text) for c in hoist] + lines

    def with_attrs(self, attrs, ind: int, nxt_start: int) -> list[L]:
        out: list[L] = []
        for k, a in enumerate(attrs):
            nxt = self.start(attrs[k + 1]) if k + 1 < len(attrs) else nxt_start
            for c in self.take(0, self.start(a)):
                out.append(L(ind, "", c.text))
            lines = self.attr_lines(a, ind)
            out += self.finish(lines, self.start(a), self.claim_end(self.end(a), nxt),
                               a.span.line, a.span.end_line, ind)
        if attrs:
            out.extend(L(ind, "", c.text) for c in self.take(0, nxt_start))
        return out

    # -- statements -------------------------------------------------------------------
    def block_body(self, blk: A.Block, ind: int) -> list[L]:
        out: list[L] = []
        prev: int | None = None
        close = self.end(blk) - 1
        for k, s in enumerate(blk.stmts):
            attrs = getattr(s, "attrs", ())
            first = attrs[0] if attrs else s
            sstart = self.start(first)
            prev = self.comment_lines(self.take(0, sstart), ind, prev, out)
            if prev is not None and self.blank_between(prev, first.span.line):
                out.append(L(0, ""))
            out += self.with_attrs(attrs, ind, self.start(s))
            nxt = blk.stmts[k + 1] if k + 1 < len(blk.stmts) else None
            nxt_start = close
            if nxt is not None:
                na = getattr(nxt, "attrs", ())
                nxt_start = self.start(na[0] if na else nxt)
            lines = self.stmt(s, ind)
            lines[0].indent = ind
            out += self.finish(lines, self.start(s), self.claim_end(self.end(s), nxt_start),
                               s.span.line, s.span.end_line, ind)
            prev = s.span.end_line
        self.comment_lines(self.take(0, close), ind, prev, out)
        return out

    def braced(self, header: list[L], hstart: int, blk: A.Block, ind: int,
               hoist_inside: bool = False) -> list[L]:
        """``header {`` + block + ``}``; ``header`` is the text before `` {``.

        Comments left over from the header go above it, or with ``hoist_inside`` (the
        header continues another line, or follows ``}``) at the top of the block."""
        lb = self.start(blk)
        rb = self.end(blk) - 1
        header[-1].text += " {"
        empty = not blk.stmts and not self.has_comment(lb + 1, rb)
        if blk.stmts:
            a = getattr(blk.stmts[0], "attrs", ())
            first_inner = self.start(a[0] if a else blk.stmts[0])
        else:
            first_inner = rb
        cs = self.take(hstart, self.claim_end(lb + 1, first_inner))
        hoist = self.attach(header, cs, self.line_of(hstart), blk.span.line)
        above: list[L] = []
        inner: list[L] = []
        if hoist_inside:
            inner = [L(ind + STEP, "", c.text) for c in hoist]
        else:  # the header starts its own line: comments can go above it
            header[0].indent = ind
            above = [L(ind, "", c.text) for c in hoist]
        if empty and not inner:
            header[-1].text += "}"
            return above + header
        body = self.block_body(blk, ind + STEP)
        return above + header + inner + body + [L(ind, "}")]

    def chain(self, lines: list[L], text_before: str, prev_blk: A.Block, blk: A.Block,
              ind: int, header_parts: tuple = ()) -> list[L]:
        """``} else {`` / ``} catch ... {``: continue after ``prev_blk``'s closing brace."""
        hstart = self.end(prev_blk) - 1
        last = lines[-1]
        head = self.cat(last.indent + len(last.text), ind, 2, text_before, *header_parts)
        merged = self.join([last], head)
        return lines[:-1] + self.braced(merged, hstart, blk, ind, hoist_inside=True)

    def stmt(self, s, ind: int) -> list[L]:
        sub = lambda x, p=0: (lambda i, c, t: self.ex(x, i, c, t, p))
        if isinstance(s, A.Let):
            parts: list = [f"let {s.name}"]
            if s.type is not None:
                parts += [": ", lambda i, c, t: self.ty(s.type, i, c, t)]
            parts.append(" = ")
            when_tail = 0 if s.when is None else 6 + len(self.flat(s.when))
            if isinstance(s.value, A.For):
                lines = self.cat(ind, ind, 0, *parts)
                lines = self.join(lines, self.for_lines(s.value, ind, self.col_after(lines, ind)))
            else:
                lines = self.cat(ind, ind, when_tail, *parts, sub(s.value))
            if s.when is not None:
                lines = self.join(lines, self.cat(self.col_after(lines, ind), ind, 0, " when ",
                                                  sub(s.when)))
            return lines
        if isinstance(s, A.ExprStmt):
            when_tail = 0 if s.when is None else 6 + len(self.flat(s.when))
            lines = self.ex(s.expr, ind, ind, when_tail)
            if s.when is not None:
                lines = self.join(lines, self.cat(self.col_after(lines, ind), ind, 0, " when ",
                                                  sub(s.when)))
            return lines
        if isinstance(s, A.If):
            lines: list[L] = []
            for k, (cond, blk) in enumerate(s.branches):
                if k == 0:
                    head = self.cat(ind, ind, 2, "if ", sub(cond))
                    lines = self.braced(head, self.start(s), blk, ind)
                else:
                    lines = self.chain(lines, " else if ", s.branches[k - 1][1], blk, ind,
                                       (sub(cond),))
            if s.orelse is not None:
                lines = self.chain(lines, " else", s.branches[-1][1], s.orelse, ind)
            return lines
        if isinstance(s, A.For):
            return self.for_lines(s, ind, ind)
        if isinstance(s, A.Parallel):
            return self.braced([L(ind, "parallel")], self.start(s), s.body, ind)
        if isinstance(s, A.Transaction):
            head = "transaction" + (f" {s.kind}" if s.kind else "")
            return self.braced([L(ind, head)], self.start(s), s.body, ind)
        if isinstance(s, A.Try):
            lines = self.braced([L(ind, "try")], self.start(s), s.body, ind)
            prev = s.body
            for c in s.catches:
                text = " catch"
                if c.kinds:
                    text += " " + ", ".join(k for k, _ in c.kinds)
                if c.binding:
                    text += f" as {c.binding}"
                lines = self.chain(lines, text, prev, c.body, ind)
                prev = c.body
            return lines
        if isinstance(s, A.Yield):
            return self.cat(ind, ind, 0, "yield ", sub(s.value))
        if isinstance(s, A.Return):
            if s.value is None:
                return [L(ind, "return")]
            return self.cat(ind, ind, 0, "return ", sub(s.value))
        if isinstance(s, A.Fail):
            if s.kind is not None:
                return self.cat(ind, ind, 0, f"fail {s.kind}(", sub(s.message), ")")
            return self.cat(ind, ind, 0, "fail ", sub(s.message))
        if isinstance(s, A.Sleep):
            return self.cat(ind, ind, 0, "sleep ", sub(s.duration))
        if isinstance(s, A.Emit):
            name = self.next_string(self.start(s))
            if s.value is None:
                return [L(ind, f"emit {name}")]
            return self.cat(ind, ind, 0, f"emit {name} ", sub(s.value))
        if isinstance(s, A.Checkpoint):
            return [L(ind, "checkpoint")]
        raise TypeError(f"cannot format statement {type(s).__name__}")

    def for_lines(self, f: A.For, ind: int, col: int) -> list[L]:
        head = self.cat(col, ind, 2, f"for {f.var} in ",
                        lambda i, c, t: self.ex(f.iterable, i, c, t))
        # as a `let` value the header continues `let x = `: comments go inside, not above
        return self.braced(head, self.start(f), f.body, ind, hoist_inside=col != ind)

    # -- declarations -----------------------------------------------------------------
    def params(self, d, ind: int, col: int, tail: int) -> list[L]:
        lpar = self.next_opener("(", self.end(d.name_span))
        return self.bracketed([self.field_item(p) for p in d.params], lpar, self.match[lpar],
                              "(", ")", ind, col, tail)

    def decl(self, d) -> list[L]:
        if isinstance(d, A.ModuleDecl):
            return [L(0, "module " + d.name)]
        if isinstance(d, A.Import):
            if d.is_file:
                return [L(0, f"import {self.raw(d.target_span)} as {d.alias}")]
            return [L(0, f"import {d.target}" + (f" as {d.alias}" if d.alias else ""))]
        if isinstance(d, A.Const):
            parts: list = [f"const {d.name}"]
            if d.type is not None:
                parts += [": ", lambda i, c, t: self.ty(d.type, i, c, t)]
            parts += [" = ", lambda i, c, t: self.ex(d.value, i, c, t)]
            return self.cat(0, 0, 0, *parts)
        if isinstance(d, A.TypeDecl):
            if d.fields is None:
                return self.cat(0, 0, 0, f"type {d.name} = ",
                                lambda i, c, t: self.ty(d.alias, i, c, t))
            lb = self.next_opener("{", self.end(d.name_span))
            items = [self.field_item(f) for f in d.fields]
            prefix = f"type {d.name} "
            body = self.bracketed(items, lb, self.match[lb], "{", "}", 0, len(prefix), 0,
                                  sep="", spaced=True, keep_broken=True)
            return self.join([L(0, prefix)], body)
        if isinstance(d, A.EnumDecl):
            lb = self.next_opener("{", self.end(d.name_span))
            items = [_Item(self.start(sp), self.end(sp), name,
                           lambda i, c, t, name=name: [L(0, name)]) for name, sp in d.members]
            prefix = f"enum {d.name} "
            body = self.bracketed(items, lb, self.match[lb], "{", "}", 0, len(prefix), 0,
                                  sep="", spaced=True, keep_broken=True)
            return self.join([L(0, prefix)], body)
        if isinstance(d, (A.NodeDecl, A.WorkflowDecl)):
            kw = "node" if isinstance(d, A.NodeDecl) else "workflow"
            brace = 2 if isinstance(d, A.WorkflowDecl) else 0
            prefix = f"{kw} {d.name}"
            res_tail = (4 + len(self.flat_type(d.result)) if d.result is not None else 0) + brace
            if d.result is not None and 1 + res_tail > WIDTH:
                # the result breaks anyway: keep the parameters on the first line if they fit
                res_tail = 5 + brace
            lines = self.join([L(0, prefix)], self.params(d, 0, len(prefix), res_tail))
            if d.result is not None:
                lines = self.join(lines, self.cat(self.col_after(lines, 0), 0, brace, " -> ",
                                                  lambda i, c, t: self.ty(d.result, i, c, t)))
            if isinstance(d, A.WorkflowDecl):  # (nothing may come between a doc and it)
                return self.braced(lines, self.start(d), d.body, 0, hoist_inside=True)
            return lines
        raise TypeError(f"cannot format {type(d).__name__}")

    def module(self) -> str:
        m = self.mod
        out: list[L] = []
        items = ([m.module_decl] if m.module_decl else []) + list(m.imports) + list(m.decls)
        first_of = lambda d: (d.attrs[0] if getattr(d, "attrs", ()) else d)
        items.sort(key=lambda d: self.start(first_of(d)))
        prev_item = None
        prev_line = 0
        for k, d in enumerate(items):
            head = first_of(d)
            cs = self.take(0, self.start(head))
            if prev_item is not None:
                together = ((isinstance(prev_item, A.Import) and isinstance(d, A.Import))
                            or (isinstance(prev_item, A.Const) and isinstance(d, A.Const)
                                and not d.attrs and not d.doc))
                first_line = cs[0].line if cs else head.span.line
                if not together or self.blank_between(prev_line, first_line):
                    out.append(L(0, ""))
            last_c = self.comment_lines(cs, 0, None, out)
            if last_c is not None and self.blank_between(last_c, head.span.line):
                out.append(L(0, ""))
            nxt_start = len(self.src)
            if k + 1 < len(items):
                nxt_start = self.start(first_of(items[k + 1]))
            out += self.with_attrs(getattr(d, "attrs", ()), 0, self.start(d))
            lines = self.decl(d)
            lines[0].indent = 0
            out += self.finish(lines, self.start(d), self.claim_end(self.end(d), nxt_start),
                               d.span.line, d.span.end_line, 0)
            prev_item, prev_line = d, d.span.end_line
        rest = self.take(0, len(self.src) + 1)
        if rest and prev_item is not None and self.blank_between(prev_line, rest[0].line):
            out.append(L(0, ""))
        self.comment_lines(rest, 0, None, out)
        text = "\n".join(self.render_line(x) for x in out)
        return text + "\n" if text else ""

    @staticmethod
    def render_line(x: L) -> str:
        if not x.text and not x.comment:
            return ""
        if not x.text:
            return " " * x.indent + x.comment
        s = " " * x.indent + x.text
        if x.comment:
            s += "  " + x.comment
        return s



# ---------------------------------------------------------------------------- kflow fmt

_SKIP_DIRS = {"node_modules", "__pycache__", ".git", ".kflow", ".venv", "venv", "build", "dist"}


def _collect(paths: list[str]) -> tuple[list[str], str | None]:
    import os

    files: list[str] = []
    for p in paths:
        if p == "-":
            files.append(p)
        elif os.path.isdir(p):
            found = []
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
                found += [os.path.join(root, n) for n in names if n.endswith(".kflow")]
            files += sorted(found)
        elif os.path.isfile(p):
            files.append(p)
        else:
            return [], f"no such file or directory: {p}"
    return files, None


def _diff_names(f: str, name: str) -> tuple[str, str]:
    import os

    if f == "-" or os.path.isabs(f):
        return name, name
    return f"a/{name}", f"b/{name}"


def run_fmt(paths: list[str], check: bool = False, diff: bool = False, out=None,
            err=None, stdin=None) -> int:
    """`kflow fmt`: format files in place (or ``--check`` / ``--diff`` them).

    Returns the exit status: 0 done (or nothing to change), 1 a file would change
    (``--check``/``--diff``) or could not be formatted (syntax error, safety check),
    2 usage error. ``-`` formats standard input to standard output."""
    import difflib
    import os
    import sys

    out = out or sys.stdout
    err = err or sys.stderr
    if not paths:
        err.write("error: no path given (usage: kflow fmt [--check] [--diff] PATH...)\n")
        return 2
    files, problem = _collect(paths)
    if problem:
        err.write(f"error: {problem}\n")
        return 2
    changed = unchanged = failed = 0
    for f in files:
        name = "<stdin>" if f == "-" else f
        try:
            if f == "-":
                text = (stdin or sys.stdin).read()
            else:
                with open(f, encoding="utf-8", newline="") as fh:
                    text = fh.read()
        except UnicodeDecodeError as exc:
            err.write(f"{name}:1:1: E0001 the file is not valid UTF-8 ({exc.reason} at byte "
                      f"{exc.start})\n")
            failed += 1
            continue
        except OSError as exc:
            err.write(f"error: cannot read {name}: {exc.strerror or exc}\n")
            failed += 1
            continue
        try:
            new = format_source(text, name)
        except FormatSyntaxError as exc:
            for d in exc.diagnostics[:1]:
                err.write(format_diagnostic(d) + "\n")
            err.write(f"error: {name} was not formatted: fix the syntax error first\n")
            failed += 1
            continue
        except FormatError as exc:
            err.write(f"error: {exc.message}\n")
            failed += 1
            continue
        if new == text:
            unchanged += 1
            if f == "-" and not (check or diff):
                out.write(new)
            continue
        changed += 1
        if diff:
            out.writelines(difflib.unified_diff(
                text.splitlines(keepends=True), new.splitlines(keepends=True),
                *_diff_names(f, name)))
            if not new.endswith("\n") or not text.endswith("\n"):
                out.write("\n")
        if check and not diff:
            out.write(f"would reformat {name}\n")
        if check or diff:
            continue
        if f == "-":
            out.write(new)
            continue
        tmp = f"{f}.kflow-fmt.tmp"
        try:
            mode = os.stat(f).st_mode
            with open(tmp, "w", encoding="utf-8", newline="") as fh:
                fh.write(new)
            os.chmod(tmp, mode & 0o7777)
            os.replace(tmp, f)
        except OSError as exc:
            err.write(f"error: cannot write {f}: {exc.strerror or exc}\n")
            failed += 1
            changed -= 1
            try:
                os.unlink(tmp)
            except OSError:
                pass
            continue
    if paths != ["-"]:
        def n(k: int) -> str:
            return f"{k} file" + ("" if k == 1 else "s")
        if check or diff:
            parts = [f"{n(changed)} would be reformatted"] if changed else []
            parts.append(f"{n(unchanged)} already formatted")
        else:
            parts = [f"{n(changed)} reformatted"] if changed else []
            parts.append(f"{n(unchanged)} left unchanged")
        if failed:
            parts.append(f"{n(failed)} could not be formatted")
        err.write(", ".join(parts) + "\n")
    if failed or ((check or diff) and changed):
        return 1
    return 0
