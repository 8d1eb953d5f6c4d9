"""What the language server knows about one document, independent of the LSP plumbing.

An :class:`Analysis` is built from a document's text and its path on disk: the text is
parsed and checked in memory (``compiler.api.check_source``; imports resolve next to the
path), and every name in the file is indexed as an :class:`Occurrence` — where it is and
what it refers to (a binding, a node, a parameter, a field...). Hover, go-to-definition,
rename and document symbols are lookups in that index; completion also works on text
that does not parse, from the text before the cursor and the last good analysis.

Positions here are 1-based lines and 1-based *code point* columns, like AST spans; the
server converts to and from the client's units (UTF-16 by default).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ..diagnostics import Diagnostic
from ..grammar import ast as A

KEYWORDS = ("module", "import", "as", "const", "type", "enum", "node", "workflow", "let",
            "if", "then", "else", "for", "in", "when", "parallel", "transaction", "try",
            "catch", "return", "fail", "wait", "sleep", "emit", "checkpoint", "yield",
            "true", "false", "null", "and", "or", "not")
PRIMITIVE_TYPES = ("int", "float", "str", "bool", "bytes", "duration", "json", "list", "map")
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

ATTRIBUTE_DOCS = {
    "impl": ('@impl("module:attribute")', "The Python implementation of a node."),
    "effect": ("@effect(pure | read | write, resource: \"name\")",
               "What the node does to the world; `write` by default."),
    "compensate": ("@compensate(Node)", "The node that undoes this one in a saga."),
    "retry": ("@retry(attempts: n, backoff: exponential(d, max: d2))",
              "Retry policy; `attempts` counts every try."),
    "timeout": ("@timeout(d)", "Cancel an attempt after the duration `d` (kind `Timeout`)."),
    "idempotent": ("@idempotent", "Re-running with the same idempotency key is safe."),
    "transactional": ('@transactional(resource: "name")', "A two-phase-commit participant."),
    "circuit_breaker": ("@circuit_breaker(failures: 5, reset: 60s)",
                        "Stop calling after repeated failures, per process."),
    "bulkhead": ("@bulkhead(limit: 10)", "At most `limit` concurrent calls, per process."),
    "api": ('@api(path: "/orders", method: "POST")', "Expose the workflow over REST."),
    "mcp": ('@mcp(name: "tool_name")', "Expose the workflow as an MCP tool."),
    "concurrency": ("@concurrency(n)", "Run up to `n` loop iterations at once."),
}


@dataclass
class Occurrence:
    """A name in the document and what it means."""

    span: A.Span
    kind: str  # binding node workflow type enum const module enum_member builtin param
    #            field attr
    target: Any
    is_def: bool = False


@dataclass
class Location:
    """A place in a file: absolute path, 1-based line, code-point columns."""

    path: str
    span: A.Span


_KINDS = {"NodeInfo": "node", "WorkflowInfo": "workflow", "TypeInfo": "type",
          "EnumInfo": "enum", "ConstInfo": "const", "ModuleInfo": "module"}


def kind_of(sym) -> str | None:
    """``node``, ``workflow``, ``type``, ``enum``, ``const`` or ``module`` for a symbol of
    a module scope (``compiler.program``), else None."""
    return _KINDS.get(type(sym).__name__)


def _contains(span: A.Span, line: int, col: int) -> bool:
    if line < span.line or line > span.end_line:
        return False
    if line == span.line and col < span.column:
        return False
    if line == span.end_line and col > span.end_column:
        return False
    return True


def _size(span: A.Span) -> tuple[int, int]:
    return (span.end_line - span.line, span.end_column - span.column)


class SourceCache:
    """Text of files on disk, by path and mtime (for imported modules and std)."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[int, str]] = {}
        self.overrides: dict[str, str] = {}  # open documents: path -> text

    def text(self, path: str) -> str:
        if path in self.overrides:
            return self.overrides[path]
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            return ""
        hit = self._files.get(path)
        if hit and hit[0] == mtime:
            return hit[1]
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError):
            text = ""
        self._files[path] = (mtime, text)
        return text


SOURCES = SourceCache()


class Analysis:
    """Parse + check of one document version, and the index of its names."""

    def __init__(self, text: str, path: str, version: int | None = None,
                 overlay: dict[str, str] | None = None):
        self.text = text
        self.path = path
        self.version = version
        #: the other open documents' texts, read instead of their files on disk
        self.overlay = overlay or {}
        self.lines = text.split("\n")
        self.program = None
        self.module: A.Module | None = None
        self.diagnostics: list[Diagnostic] = []
        self.occurrences: list[Occurrence] = []
        self.error: str | None = None
        self._run()

    # -- building -----------------------------------------------------------------
    def _run(self) -> None:
        try:
            from ..compiler.api import check_source

            self.program = check_source(self.text, self.path, self.overlay)
        except Exception as exc:  # a checker bug must not take the editor down
            self.error = f"{type(exc).__name__}: {exc}"
            from ..grammar.parser import parse

            self.module, self.diagnostics = parse(self.text, self.path)
            self.diagnostics = [d for d in self.diagnostics if d.span.file == self.path]
            return
        entry = self.program.entry
        if not getattr(entry, "parse_failed", False):
            self.module = entry.ast
        self.diagnostics = [d for d in self.program.diagnostics if d.span.file == self.path]
        if self.module is not None:
            self._index()

    def sees_same(self, overlay: dict[str, str]) -> bool:
        """Would ``overlay`` give this analysis the same imported texts? (A document
        opened or closed may be an import that did not resolve, or now reads from disk.)"""
        if self.program is None or overlay.keys() != self.overlay.keys():
            return overlay == self.overlay
        return all(overlay.get(p) == self.overlay.get(p)
                   for p in self.program.modules if p != self.path)

    @property
    def ok(self) -> bool:
        return self.module is not None and self.program is not None

    @property
    def scope(self) -> dict:
        return self.program.entry.scope if self.program is not None else {}

    def _add(self, span: A.Span | None, kind: str, target: Any, is_def: bool = False) -> None:
        if span is not None and span.file == self.path and target is not None:
            self.occurrences.append(Occurrence(span, kind, target, is_def))

    def _index(self) -> None:
        p = self.program
        scope = self.scope
        imported = {id(imp): target for imp, target in p.entry.imported}
        for imp in self.module.imports:
            self._add(imp.target_span, "module", imported.get(id(imp)))
        for d in self.module.decls:
            info = scope.get(d.name)
            kind = {A.NodeDecl: "node", A.WorkflowDecl: "workflow", A.TypeDecl: "type",
                    A.EnumDecl: "enum", A.Const: "const"}[type(d)]
            if info is not None and getattr(info, "decl", None) is d:
                self._add(d.name_span, kind, info, True)
            if isinstance(d, A.EnumDecl) and info is not None:
                for name, span in d.members:
                    self._add(span, "enum_member", (info, name), True)
            if isinstance(d, A.TypeDecl) and d.fields:
                for f in d.fields:
                    self._add(f.name_span, "field", (info, f), True)
            if isinstance(d, A.NodeDecl) and info is not None:
                for prm in info.params:
                    self._add(prm.decl.name_span, "param", (info, prm), True)
        for n in A.walk(self.module):
            self._index_node(n)

    def _resolve(self, dotted: str):
        """A (possibly dotted) name in the module scope: a symbol or None."""
        parts = dotted.split(".")
        sym = self.scope.get(parts[0])
        for part in parts[1:]:
            if sym is None or kind_of(sym) != "module":
                return None
            sym = sym.scope.get(part)
        return sym

    def _index_node(self, n) -> None:
        p = self.program
        if isinstance(n, A.Name):
            ref = p.names.get(n)
            if ref is not None:
                self._add_ref(n.span, ref)
            else:
                sym = self.scope.get(n.id)
                if sym is not None:
                    self._add(n.span, kind_of(sym) or "symbol", sym)
        elif isinstance(n, A.Attribute):
            ref = p.names.get(n)
            if ref is not None:
                self._add_ref(n.name_span, ref)
                return
            t = p.types.get(n.obj)
            if t is not None:
                self._add(n.name_span, "field", (t, n.name))
        elif isinstance(n, A.Call):
            tgt = p.calls.get(n)
            if tgt is not None and tgt.kind in ("node", "workflow"):
                params = {prm.name: prm for prm in tgt.target.params}
                for a in n.args:
                    if a.name and a.name in params:
                        self._add(a.name_span, "param", (tgt.target, params[a.name]))
        elif isinstance(n, (A.Let, A.For)):
            b = p.bindings.get(n)
            span = n.name_span if isinstance(n, A.Let) else n.var_span
            self._add(span, "binding", b, True)
        elif isinstance(n, A.Catch):
            self._add(n.binding_span, "binding", p.bindings.get(n), True)
        elif isinstance(n, A.Comprehension):
            self._add(n.var_span, "binding", p.bindings.get(n), True)
        elif isinstance(n, A.WorkflowDecl):
            for prm in n.params:
                self._add(prm.name_span, "binding", p.bindings.get(prm), True)
        elif isinstance(n, A.TypeName):
            if n.name not in PRIMITIVE_TYPES and n.name != "null":
                sym = self._resolve(n.name)
                if sym is not None:
                    last = n.name.rsplit(".", 1)[-1]
                    span = A.Span(n.span.file, n.span.end_line, n.span.end_column - len(last),
                                  n.span.end_line, n.span.end_column)
                    self._add(span, kind_of(sym) or "type", sym)
                    if "." in n.name:
                        head = n.name.split(".")[0]
                        self._add(A.Span(n.span.file, n.span.line, n.span.column, n.span.line,
                                         n.span.column + len(head)), "module",
                                  self.scope.get(head))
        elif isinstance(n, A.Attr):
            s = n.name_span  # the `@` too, so hovering it works
            self._add(A.Span(s.file, s.line, s.column - 1, s.end_line, s.end_column), "attr",
                      n.name)

    def _add_ref(self, span: A.Span, ref) -> None:
        kind = {"local": "binding"}.get(ref.kind, ref.kind)
        self._add(span, kind, ref.target)

    # -- lookups ------------------------------------------------------------------
    def _by_line(self, attr: str, items) -> dict[int, list]:
        index = self.__dict__.get(attr)
        if index is None:
            index = {}
            for item, span in items:
                for ln in range(span.line, span.end_line + 1):
                    index.setdefault(ln, []).append(item)
            self.__dict__[attr] = index
        return index

    def occurrence_at(self, line: int, col: int) -> Occurrence | None:
        index = self._by_line("_occ_index", ((o, o.span) for o in self.occurrences))
        best = None
        for o in index.get(line, ()):
            if _contains(o.span, line, col) and (best is None or _size(o.span) < _size(best.span)):
                best = o
        return best

    def expression_at(self, line: int, col: int):
        """The innermost typed expression at a position: (expr, type) or None."""
        if self.program is None:
            return None
        exprs = ((e, e.span) for e in self.program.types
                 if getattr(e, "span", None) is not None and e.span.file == self.path)
        index = self._by_line("_expr_index", exprs)
        best = None
        for e in index.get(line, ()):
            if _contains(e.span, line, col) and (best is None or _size(e.span) < _size(best.span)):
                best = e
        return (best, self.program.types[best]) if best is not None else None

    def references(self, target: Any) -> list[Occurrence]:
        return [o for o in self.occurrences if o.target is target]

    # -- descriptions -----------------------------------------------------------------
    def hover(self, line: int, col: int) -> tuple[str, A.Span] | None:
        occ = self.occurrence_at(line, col)
        if occ is not None:
            text = self.describe(occ)
            if text:
                return text, occ.span
        hit = self.expression_at(line, col)
        if hit is not None:
            e, t = hit
            return _code(t.show()), e.span
        return None

    def describe(self, occ: Occurrence) -> str | None:
        k, t = occ.kind, occ.target
        if k == "binding":
            word = {"param": "param", "let": "let", "loop": "for", "error": "catch",
                    "comprehension": "for"}.get(t.kind, "let")
            return _code(f"{word} {t.name}: {t.type.show()}")
        if k in ("node", "workflow"):
            return self.describe_callable(t)
        if k == "builtin":
            from ..compiler.builtins import SIGNATURES

            sig = SIGNATURES.get(t)
            params = ", ".join(sig[2]) if sig else ""
            return _code(f"{t}({params})") + "\n\nbuiltin function (pure, positional arguments)"
        if k in ("type", "enum"):
            return self.describe_type(t)
        if k == "const":
            return _join(_code(f"const {t.name}: {t.type.show()} = {_short_value(t.value)}"),
                         getattr(t.decl, "doc", None))
        if k == "module":
            where = "standard library" if t.is_std else _rel(t.path)
            return _code(f"module {t.name}") + f"\n\n{where}"
        if k == "enum_member":
            info, member = t
            return _code(f"{info.name}.{member}") + f"\n\nmember of enum `{info.name}`"
        if k == "param":
            info, prm = t
            default = ""
            if prm.default is not None:
                default = " = " + self.flat_expr(info.module, prm.default)
            return _code(f"{prm.name}: {prm.type.show()}{default}") + \
                f"\n\nparameter of {info.kind} `{info.name}`"
        if k == "field":
            owner, f = t
            if isinstance(f, A.Field):  # a field of a declared type
                return _code(f"{f.name}: {self.flat_type(owner.module, f.type)}") + \
                    f"\n\nfield of `{owner.name}`"
            ft = _field_type(owner, f)
            if ft is None:
                return None
            return _code(f"{f}: {ft.show()}") + f"\n\nfield of `{owner.show()}`"
        if k == "attr":
            doc = ATTRIBUTE_DOCS.get(t)
            if doc is None:
                return _code(f"@{t}") + "\n\nunknown attribute"
            return _code(doc[0]) + "\n\n" + doc[1]
        return None

    def signature(self, info) -> str:
        d = info.decl
        mod = info.module
        params = ", ".join(self.flat_field(mod, p) for p in d.params)
        sig = f"{info.kind} {info.name}({params})"
        if d.result is not None:
            sig += " -> " + self.flat_type(mod, d.result)
        return sig

    def describe_callable(self, info) -> str:
        lines = [_code(self.signature(info))]
        if info.doc:
            lines.append(info.doc)
        facts = []
        if info.kind == "node":
            eff = f"effect `{info.effect}`"
            if info.resource:
                eff += f" on `{info.resource}`"
            facts.append(eff)
            if info.compensate is not None:
                facts.append(f"compensated by `{info.compensate.name}`")
            if info.idempotent:
                facts.append("idempotent")
            if info.transactional:
                facts.append("2PC participant")
            if info.impl:
                facts.append(f"implemented by `{info.impl}`")
        else:
            if info.api_path:
                facts.append(f"REST `{info.api_method} {info.api_path}`")
            if info.mcp_name:
                facts.append(f"MCP tool `{info.mcp_name}`")
        if info.module is not self.program.entry:
            facts.append(f"from `{info.module.name}`")
        if facts:
            lines.append(" · ".join(facts))
        return "\n\n".join(lines)

    def describe_type(self, info) -> str:
        d = info.decl
        if isinstance(d, A.EnumDecl):
            head = f"enum {d.name} {{ " + ", ".join(m for m, _ in d.members) + " }"
        elif d.fields is not None:
            body = "\n".join(f"  {self.flat_field(info.module, f)}" for f in d.fields)
            head = f"type {d.name} {{\n{body}\n}}"
        else:
            head = f"type {d.name} = {self.flat_type(info.module, d.alias)}"
        return _join(_code(head), info.doc)

    # -- printing bits of other modules ------------------------------------------
    def _printer(self, module_info):
        from ..format import _Printer

        path = module_info.path
        text = self.text if path == os.path.abspath(self.path) else SOURCES.text(path)
        return _Printer(text, module_info.ast)

    def flat_type(self, module_info, t) -> str:
        return self._printer(module_info).flat_type(t)

    def flat_expr(self, module_info, e) -> str:
        try:
            return self._printer(module_info).flat(e)
        except Exception:
            return "…"

    def flat_field(self, module_info, f: A.Field) -> str:
        try:
            return self._printer(module_info).flat_field(f)
        except Exception:
            return f.name

    # -- definitions ------------------------------------------------------------------
    def definition(self, line: int, col: int) -> Location | None:
        occ = self.occurrence_at(line, col)
        if occ is None:
            return None
        return self.location_of(occ)

    def location_of(self, occ: Occurrence) -> Location | None:
        k, t = occ.kind, occ.target
        if k == "binding":
            return Location(os.path.abspath(self.path), t.span)
        if k in ("node", "workflow", "type", "enum", "const"):
            return Location(t.module.path, t.decl.name_span)
        if k == "module":
            return Location(t.path, A.Span(t.path, 1, 1, 1, 1))
        if k == "enum_member":
            info, member = t
            for name, span in info.decl.members:
                if name == member:
                    return Location(info.module.path, span)
        if k == "param":
            info, prm = t
            return Location(info.module.path, prm.decl.name_span)
        if k == "field":
            owner, f = t
            if isinstance(f, A.Field):
                return Location(owner.module.path, f.name_span)
            return self._field_location(owner, f)
        return None

    def _field_location(self, rtype, name: str) -> Location | None:
        from ..compiler import types as T

        rt = T.strip_optional(rtype)
        if isinstance(rt, T.RecordT) and rt.name:
            sym = self._find_type(rt.name)
            if sym is not None and getattr(sym.decl, "fields", None):
                for f in sym.decl.fields:
                    if f.name == name:
                        return Location(sym.module.path, f.name_span)
        # an inline result record of a node/workflow: find the callee whose result it is
        for mod in (self.program.modules.values() if self.program else ()):
            for sym in mod.scope.values():
                if kind_of(sym) in ("node", "workflow") and sym.module is mod \
                        and T.strip_optional(sym.result) == rt \
                        and isinstance(sym.decl.result, A.TypeRecord):
                    for f in sym.decl.result.fields:
                        if f.name == name:
                            return Location(mod.path, f.name_span)
        return None

    def _find_type(self, name: str):
        for mod in (self.program.modules.values() if self.program else ()):
            sym = mod.scope.get(name)
            if sym is not None and kind_of(sym) == "type" and sym.module is mod:
                return sym
        return None

    # -- rename -----------------------------------------------------------------------
    def binding_at(self, line: int, col: int):
        occ = self.occurrence_at(line, col)
        if occ is None or occ.kind != "binding":
            return None, None
        return occ.target, occ

    def rename_spans(self, line: int, col: int) -> list[A.Span] | None:
        b, _ = self.binding_at(line, col)
        if b is None:
            return None
        spans = {(o.span.line, o.span.column): o.span for o in self.references(b)}
        if b.span.file == self.path:
            spans.setdefault((b.span.line, b.span.column), b.span)
        return [spans[k] for k in sorted(spans)]

    # -- symbols ----------------------------------------------------------------------
    def symbols(self) -> list[dict]:
        """Document outline: dicts with name, kind, detail, span, selection, children."""
        if self.module is None:
            return []
        out = []
        for imp in self.module.imports:
            out.append(_sym(imp.local_name, "module", imp.target, imp.span, imp.target_span))
        for d in self.module.decls:
            span = d.attrs[0].span.to(d.span) if d.attrs else d.span
            if isinstance(d, A.NodeDecl):
                out.append(_sym(d.name, "node", self._sig_of(d), span, d.name_span,
                                [_sym(p.name, "param", "", p.span, p.name_span)
                                 for p in d.params]))
            elif isinstance(d, A.WorkflowDecl):
                kids = [_sym(p.name, "param", "", p.span, p.name_span) for p in d.params]
                kids += [_sym(b.name, "binding", "", b.span, b.name_span)
                         for b in A.walk(d.body) if isinstance(b, A.Let)]
                out.append(_sym(d.name, "workflow", self._sig_of(d), span, d.name_span, kids))
            elif isinstance(d, A.TypeDecl):
                kids = [_sym(f.name, "field", "", f.span, f.name_span) for f in d.fields or ()]
                out.append(_sym(d.name, "type", "", span, d.name_span, kids))
            elif isinstance(d, A.EnumDecl):
                kids = [_sym(m, "enum_member", "", s, s) for m, s in d.members]
                out.append(_sym(d.name, "enum", "", span, d.name_span, kids))
            elif isinstance(d, A.Const):
                out.append(_sym(d.name, "const", "", span, d.name_span))
        return out

    def _sig_of(self, d) -> str:
        info = self.scope.get(d.name)
        if info is not None and getattr(info, "decl", None) is d:
            try:
                return self.signature(info).split("(", 1)[1].join(["(", ""])
            except Exception:
                return ""
        return ""


def _sym(name, kind, detail, span, selection, children=()) -> dict:
    return {"name": name, "kind": kind, "detail": detail, "span": span,
            "selection": selection, "children": list(children)}


def _field_type(owner, name: str):
    from ..compiler import types as T

    t = T.strip_optional(owner) if isinstance(owner, T.Type) else None
    if isinstance(t, T.ErrorT):
        t = T.ERROR_RECORD
    if isinstance(t, T.RecordT):
        f = t.field(name)
        return f.type if f else None
    return None


def _code(text: str) -> str:
    return f"```kflow\n{text}\n```"


def _join(head: str, doc: str | None) -> str:
    return head + (f"\n\n{doc}" if doc else "")


def _short_value(v) -> str:
    import json

    try:
        s = json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError):
        s = repr(v)
    return s if len(s) <= 80 else s[:77] + "..."


def _rel(path: str) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


# ---------------------------------------------------------------------------- completion


@dataclass
class Completion:
    label: str
    kind: str  # keyword node workflow type enum const module binding builtin field
    #            enum_member param attr
    detail: str = ""
    insert: str | None = None
    doc: str | None = None
    sort: str = "5"


_CHAIN = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\??\.[A-Za-z_][A-Za-z0-9_]*)*)\??\.([A-Za-z_]"
                    r"[A-Za-z0-9_]*)?$")
_ATTR = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)?$")


def complete(text: str, line: int, col: int, good: Analysis | None) -> list[Completion]:
    """Completions at a position of ``text`` (which need not parse); ``good`` is the
    latest analysis of this document that did parse and check, for names and types."""
    lines = text.split("\n")
    cur = lines[line - 1] if 0 < line <= len(lines) else ""
    prefix = cur[:col - 1]
    if "#" in _strip_strings(prefix):
        return []
    if re.fullmatch(r"\s*import\s+std\.[A-Za-z_]*", prefix):
        from ..compiler.loader import STDLIB_DIR

        return [Completion(p.stem, "module", f"std.{p.stem}", sort="0")
                for p in sorted(STDLIB_DIR.glob("*.kflow"))]
    m = _ATTR.search(prefix)
    if m:
        return [Completion(name, "attr", doc[0], doc=doc[1]) for name, doc in
                sorted(ATTRIBUTE_DOCS.items())]
    m = _CHAIN.search(prefix)
    if m and not re.search(r"[0-9]\.$", prefix):
        return _members(m.group(1), line, good)
    out: list[Completion] = []
    call = _open_call(lines, line, col)
    if call is not None and good is not None and good.program is not None:
        callee, given, at_name = call
        sym = good._resolve(callee)
        if sym is not None and kind_of(sym) in ("node", "workflow") and at_name:
            for prm in sym.params:
                if prm.name in given:
                    continue
                req = "" if prm.has_default else " (required)"
                out.append(Completion(prm.name, "param", f"{prm.type.show()}{req}",
                                      insert=f"{prm.name}: ",
                                      sort="0" if not prm.has_default else "1"))
    out += _scope_items(line, good)
    out += [Completion(k, "keyword", sort="8") for k in KEYWORDS]
    out += [Completion(t, "keyword", "type", sort="7") for t in PRIMITIVE_TYPES]
    return out


def _strip_strings(s: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"?', '""', s)


def _open_call(lines: list[str], line: int, col: int):
    """If the cursor is inside the parentheses of a call: (callee, named args already
    given, whether the cursor is where an argument name goes)."""
    text = "\n".join(lines[:line - 1] + [lines[line - 1][:col - 1]])
    text = _strip_strings(text)
    depth = 0
    i = len(text) - 1
    stop = max(0, len(text) - 4000)
    while i >= stop:
        ch = text[i]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            if depth == 0:
                if ch != "(":
                    return None
                m = re.search(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$",
                              text[:i])
                if not m:
                    return None
                inside = text[i + 1:]
                flat = _flatten(inside)
                given = set(re.findall(r"(?:^|,)\s*([A-Za-z_][A-Za-z0-9_]*)\s*:", flat))
                at_name = re.search(r"(?:^|,)\s*[A-Za-z_]*$", flat) is not None
                return m.group(1), given, at_name
            depth -= 1
        i -= 1
    return None


def _flatten(s: str) -> str:
    """Drop nested bracket contents so only the top-level argument list remains."""
    out, depth = [], 0
    for ch in s:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _visible_bindings(line: int, good: Analysis) -> dict:
    """Bindings of the workflow around ``line`` defined on an earlier line (or params)."""
    out: dict = {}
    if good.module is None:
        return out
    for d in good.module.decls:
        if isinstance(d, A.WorkflowDecl) and d.span.line <= line <= d.span.end_line + 50:
            for o in good.occurrences:
                if o.kind == "binding" and o.is_def and d.span.line <= o.span.line \
                        and (o.span.line < line or o.target.kind == "param") \
                        and o.span.line <= d.span.end_line:
                    out[o.target.name] = o.target
    return out


def _scope_items(line: int, good: Analysis | None) -> list[Completion]:
    if good is None or good.program is None:
        return []
    out = []
    for name, b in _visible_bindings(line, good).items():
        out.append(Completion(name, "binding", b.type.show(), sort="2"))
    for name, sym in good.scope.items():
        out.append(_symbol_item(good, name, sym))
    from ..compiler.builtins import SIGNATURES

    for name, sig in SIGNATURES.items():
        out.append(Completion(name, "builtin", f"{name}({', '.join(sig[2])})", sort="6"))
    return out


def _symbol_item(good: Analysis, name: str, sym) -> Completion:
    kind = kind_of(sym) or "symbol"
    detail, doc = "", getattr(sym, "doc", None)
    try:
        if kind in ("node", "workflow"):
            detail = good.signature(sym)
        elif kind == "const":
            detail = sym.type.show()
        elif kind == "module":
            detail = f"module {sym.name}"
    except Exception:
        pass
    return Completion(name, kind, detail, doc=doc, sort="3")


def _members(chain: str, line: int, good: Analysis | None) -> list[Completion]:
    if good is None or good.program is None:
        return []
    from ..compiler import types as T

    parts = re.split(r"\??\.", chain)
    head = parts[0]
    cur: Any = _visible_bindings(line, good).get(head)
    cur = cur.type if cur is not None else good.scope.get(head)
    for part in parts[1:]:
        if cur is None:
            return []
        if kind_of(cur) == "module" and not isinstance(cur, T.Type):
            cur = cur.scope.get(part)
            continue
        if isinstance(cur, T.Type):
            cur = _field_type(cur, part)
            continue
        return []
    if cur is None:
        return []
    if isinstance(cur, T.Type):
        t = T.strip_optional(cur)
        if isinstance(t, T.ErrorT):
            t = T.ERROR_RECORD
        if isinstance(t, T.RecordT):
            return [Completion(f.name, "field", f.type.show(), sort="0") for f in t.fields]
        return []
    kind = kind_of(cur)
    if kind == "module":
        return [_symbol_item(good, n, s) for n, s in cur.scope.items()
                if getattr(s, "module", None) is cur]
    if kind == "enum":
        return [Completion(mname, "enum_member", cur.name, sort="0")
                for mname, _ in cur.decl.members]
    return []
