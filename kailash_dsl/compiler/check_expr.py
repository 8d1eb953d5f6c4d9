"""Typing expressions (§3, §10): names, fields, calls, operators, literals.

Checking is bidirectional: :meth:`ExprChecker.expr` takes the type the context expects
(or None) and pushes it into literals, so ``{}`` becomes a map or a record and a record
literal is checked field by field against a declared record type (E0207 for an extra
field). Every visited expression's type goes into ``Program.types``; after an error the
type is ``UNKNOWN``, which is assignable both ways, so one mistake gives one diagnostic.
"""

from __future__ import annotations

from typing import Any

from ..diagnostics import did_you_mean
from ..grammar import ast as A
from . import types as T
from .builtins import BUILTIN_NAMES, SIGNATURES, check_builtin
from .program import (
    Binding,
    CallTarget,
    ConstInfo,
    EnumInfo,
    ModuleInfo,
    NameRef,
    NodeInfo,
    TypeInfo,
    WorkflowInfo,
)

_LITERAL_TYPES = {"int": T.INT, "float": T.FLOAT, "str": T.STR, "bool": T.BOOL,
                  "null": T.NULL, "duration": T.DURATION, "bytes": T.BYTES}
_ARITH = {"+", "-", "*", "/", "//", "%"}
_ORDER = {"<", "<=", ">", ">="}


def q(t: T.Type) -> str:
    return f"`{t.show()}`"


def describe_symbol(sym: Any) -> str:
    if isinstance(sym, NodeInfo):
        return f"node `{sym.name}`"
    if isinstance(sym, WorkflowInfo):
        return f"workflow `{sym.name}`"
    if isinstance(sym, TypeInfo):
        return f"type `{sym.name}`"
    if isinstance(sym, EnumInfo):
        return f"enum `{sym.name}`"
    if isinstance(sym, ConstInfo):
        return f"constant `{sym.name}`"
    if isinstance(sym, ModuleInfo):
        return f"module `{sym.name}`"
    return "it"


def exported(mod: ModuleInfo, name: str) -> Any:
    """A module's export ``name`` (its own declarations, not what it imports)."""
    sym = mod.scope.get(name)
    if sym is None or isinstance(sym, ModuleInfo) or getattr(sym, "module", None) is not mod:
        return None
    return sym


def exported_names(mod: ModuleInfo, kinds: tuple = ()) -> list[str]:
    return [n for n, s in mod.scope.items()
            if not isinstance(s, ModuleInfo) and getattr(s, "module", None) is mod
            and (not kinds or isinstance(s, kinds))]


def mismatch_help(expected: T.Type, found: T.Type) -> str | None:
    """A hint for the most common mismatches."""
    inner = T.strip_optional(found)
    if isinstance(found, T.Optional) and T.assignable(inner, expected):
        return "the value may be null; use `x ?? default`, or check `x != null` first"
    if expected == T.INT and found == T.FLOAT:
        return "convert with `round(x)` or `int(x)`"
    if expected == T.STR and found in (T.INT, T.FLOAT, T.BOOL):
        return "convert with `str(x)`, or interpolate: `\"${x}\"`"
    if expected in (T.INT, T.FLOAT) and found == T.STR:
        return f"convert with `{expected.show()}(x)`"
    if found == T.JSON:
        return "a `json` value must be converted first, e.g. `int(x)` or `str(x)`"
    if isinstance(expected, T.RecordT) and isinstance(found, T.RecordT):
        missing = T.record_missing(found, expected)
        bad = T.record_mismatched(found, expected)
        parts = []
        if missing:
            parts.append("missing " + ", ".join(f"`{m}`" for m in missing))
        for name, want, got in bad[:3]:
            parts.append(f"field `{name}` is `{got.show()}`, expected `{want.show()}`")
        if parts:
            return "; ".join(parts)
    if isinstance(expected, T.MapT) and isinstance(found, T.RecordT):
        return "map literals quote their keys: `{\"key\": value}`"
    return None


def best_guess(name: str, candidates: list[tuple[str, str]]) -> str | None:
    """The display text of the candidate closest to ``name`` (by its plain name)."""
    import difflib

    best, score = None, 0.0
    for plain, shown in candidates:
        if plain == name:
            continue
        r = difflib.SequenceMatcher(None, name.lower(), plain.lower()).ratio()
        if r > score:
            best, score = shown, r
    return best if score >= 0.6 else None


_DISPATCH: dict[type, Any] = {}


def _no_expr(self, e, expected) -> T.Type:
    self.report("E0201", "this expression cannot be used here", e.span)
    return T.UNKNOWN


class ExprChecker:
    """Mixin: expression typing. See :class:`kailash_dsl.compiler.checker.Checker`."""

    # -- entry points ---------------------------------------------------------------
    def expr(self, e: A.Expr, expected: T.Type | None = None) -> T.Type:
        kind = type(e)
        method = _DISPATCH.get(kind)
        if method is None:
            method = _DISPATCH[kind] = getattr(type(self), "x_" + kind.__name__, _no_expr)
        t = method(self, e, expected)
        self.types[e] = t
        return t

    def expect(self, e: A.Expr, expected: T.Type, code: str = "E0201",
               what: str | None = None) -> T.Type:
        """Type ``e`` against ``expected``; report ``code`` at ``e`` when not assignable."""
        self._mismatch_code.append(code)
        try:
            t = self.expr(e, expected)
        finally:
            self._mismatch_code.pop()
        if expected == T.JSON:
            self.swallow(e, t)
        if not T.assignable(t, expected):
            lead = f"{what}: " if what else ""
            self.report(code, f"{lead}expected {q(expected)}, found {q(t)}", e.span,
                        help=mismatch_help(expected, t))
            return expected
        return t

    @property
    def mismatch_code(self) -> str:
        return self._mismatch_code[-1] if self._mismatch_code else "E0201"

    def swallow(self, e: A.Expr, t: T.Type) -> None:
        """W0003: a `when`-guarded result flows somewhere its null goes unnoticed."""
        if not isinstance(e, A.Name) or not T.is_optional(t):
            return
        ref = self.names.get(e)
        if ref is None or ref.kind != "local" or id(ref.target) not in self.when_bindings:
            return
        self.report("W0003", f"`{e.id}` is null when its `when` condition was false",
                    e.span, severity="warning",
                    help=f"check `{e.id} != null` first, or write `{e.id} ?? <default>`")

    # -- names ----------------------------------------------------------------------
    def lookup_local(self, name: str):
        return self.scope.lookup(name) if self.scope is not None else None

    def x_Name(self, e: A.Name, expected) -> T.Type:
        found = self.lookup_local(e.id)
        if found is not None:
            binding, t = found
            binding.used = True
            self.names[e] = NameRef("local", binding)
            return t
        sym = self.mod.scope.get(e.id)
        if sym is None:
            self.unknown_name(e)
            return T.UNKNOWN
        if isinstance(sym, ConstInfo):
            self.names[e] = NameRef("const", sym)
            return self.resolve_const(sym, e)
        self.not_a_value(e, sym)
        return T.UNKNOWN

    def unknown_name(self, e: A.Name) -> None:
        cands = list(self.scope.visible_names()) if self.scope is not None else []
        cands += [n for n, s in self.mod.scope.items() if isinstance(s, ConstInfo)]
        guess = did_you_mean(e.id, cands)
        help = f"did you mean `{guess}`?" if guess else None
        if guess is None and e.id in BUILTIN_NAMES:
            help = f"`{e.id}` is a builtin function; call it: `{e.id}(...)`"
        elif guess is None and self.const_ctx:
            help = f"{self.const_ctx} can only use literals, constants and enum members"
        self.report("E0101", f"cannot find `{e.id}` in this scope", e.span, help=help)

    def not_a_value(self, e: A.Expr, sym: Any) -> None:
        label = e.id if isinstance(e, A.Name) else getattr(e, "name", "")
        if isinstance(sym, EnumInfo):
            members = sym.type.members
            example = f"{label}.{members[0]}" if members else label
            help = f"write a member, e.g. `{example}`"
        elif isinstance(sym, (NodeInfo, WorkflowInfo)):
            help = f"call it: `{label}(...)`"
        elif isinstance(sym, TypeInfo):
            help = "write a record literal `{field: value, ...}`"
        elif isinstance(sym, ModuleInfo):
            help = f"use one of its declarations: `{label}.Name`"
        else:
            help = None
        self.report("E0201", f"expected a value, found {describe_symbol(sym)}", e.span,
                    help=help)

    def static_ref(self, e: A.Expr) -> Any:
        """The module or enum an expression names (``m``, ``Status``, ``m.Status``), or
        None when it is a value. Records the resolution in ``Program.names``."""
        if isinstance(e, A.Name):
            if self.lookup_local(e.id) is not None:
                return None
            sym = self.mod.scope.get(e.id)
            if isinstance(sym, ModuleInfo):
                self.names[e] = NameRef("module", sym)
                return sym
            if isinstance(sym, EnumInfo):
                self.names[e] = NameRef("enum", sym)
                return sym
            return None
        if isinstance(e, A.Attribute) and not e.optional:
            inner = self.static_ref(e.obj)
            if isinstance(inner, ModuleInfo):
                sym = exported(inner, e.name)
                if isinstance(sym, EnumInfo):
                    self.names[e] = NameRef("enum", sym)
                    return sym
        return None

    def x_Attribute(self, e: A.Attribute, expected) -> T.Type:
        target = self.static_ref(e.obj)
        if isinstance(target, EnumInfo):
            members = target.type.members
            if e.name in members:
                self.names[e] = NameRef("enum_member", (target, e.name))
                return target.type
            guess = did_you_mean(e.name, members)
            self.report("E0204", f"enum `{target.name}` has no member `{e.name}`",
                        e.name_span,
                        help=f"did you mean `{guess}`?" if guess else
                        "its members are " + ", ".join(f"`{m}`" for m in members))
            return T.UNKNOWN
        if isinstance(target, ModuleInfo):
            if target.parse_failed:
                return T.UNKNOWN
            sym = exported(target, e.name)
            if isinstance(sym, ConstInfo):
                self.names[e] = NameRef("const", sym)
                return self.resolve_const(sym, e)
            if sym is not None:
                self.not_a_value(e, sym)
                return T.UNKNOWN
            guess = did_you_mean(e.name, exported_names(target))
            self.report("E0101", f"module `{target.name}` has no `{e.name}`", e.name_span,
                        help=f"did you mean `{guess}`?" if guess else None)
            return T.UNKNOWN
        t = self.expr(e.obj)
        return self.field_type(t, e)

    def field_type(self, t: T.Type, e: A.Attribute) -> T.Type:
        if isinstance(t, T.Unknown):
            return T.UNKNOWN
        if T.is_optional(t):
            inner = T.strip_optional(t)
            if e.optional:
                if t == T.NULL:
                    return T.NULL
                return T.optional(self.field_type(inner, e))
            what = self.describe_expr(e.obj)
            self.report("E0206", f"cannot read field `{e.name}` of {what}, which may be null "
                                 f"(type {q(t)})", e.name_span,
                        help=f"use `?.{e.name}` (gives an optional), add `?? <default>`, "
                             f"or check for null first")
            if t == T.NULL:
                return T.UNKNOWN
            with self.quiet():
                return self.field_type(inner, e)
        if t == T.JSON:
            return T.JSON
        if isinstance(t, T.RecordT):
            f = t.field(e.name)
            if f is not None:
                return f.type
            names = [x.name for x in t.fields]
            guess = did_you_mean(e.name, names)
            help = f"did you mean `{guess}`?" if guess else (
                "available fields: " + ", ".join(f"`{n}`" for n in names) if names else
                "this record has no fields")
            self.report("E0204", f"no field `{e.name}` on type {q(t)}", e.name_span, help=help)
            return T.UNKNOWN
        if isinstance(t, T.MapT):
            self.report("E0204", f"no field `{e.name}` on type {q(t)}", e.name_span,
                        help=f"read a map entry with an index: `m[\"{e.name}\"]`")
            return T.UNKNOWN
        help = None
        if e.name in BUILTIN_NAMES:
            help = f"builtins are functions: `{e.name}(x)`"
        self.report("E0204", f"type {q(t)} has no fields (reading `{e.name}`)", e.name_span,
                    help=help)
        return T.UNKNOWN

    def describe_expr(self, e: A.Expr) -> str:
        if isinstance(e, A.Name):
            return f"`{e.id}`"
        if isinstance(e, A.Attribute):
            inner = self.describe_expr(e.obj)
            if inner.startswith("`"):
                return f"{inner[:-1]}{'?.' if e.optional else '.'}{e.name}`"
        return "this value"

    def x_Index(self, e: A.Index, expected) -> T.Type:
        t = self.expr(e.obj)
        if T.is_optional(t):
            self.report("E0206", f"cannot index {self.describe_expr(e.obj)}, which may be null "
                                 f"(type {q(t)})", e.span,
                        help="check for null first, or add `?? <default>`")
            t = T.strip_optional(t) if t != T.NULL else T.UNKNOWN
        if isinstance(t, T.Unknown):
            self.expr(e.index)
            return T.UNKNOWN
        if isinstance(t, T.ListT):
            self.expect(e.index, T.INT, what="a list index")
            return t.elem
        if isinstance(t, T.MapT):
            self.expect(e.index, T.STR, what="a map key")
            return t.elem
        if t == T.STR:
            self.expect(e.index, T.INT, what="a string index")
            return T.STR
        if t == T.JSON:
            it = self.expr(e.index)
            if not T.assignable(it, T.INT) and not T.assignable(it, T.STR):
                self.report("E0201", f"an index must be `int` or `str`, found {q(it)}",
                            e.index.span)
            return T.JSON
        if isinstance(t, T.RecordT) and isinstance(e.index, A.Literal) \
                and e.index.kind == "str":
            self.expr(e.index)
            f = t.field(e.index.value)
            if f is not None:
                return f.type
            guess = did_you_mean(e.index.value, [x.name for x in t.fields])
            self.report("E0204", f"no field `{e.index.value}` on type {q(t)}", e.index.span,
                        help=f"did you mean `{guess}`?" if guess else None)
            return T.UNKNOWN
        self.expr(e.index)
        self.report("E0201", f"type {q(t)} cannot be indexed", e.span,
                    help="lists, maps and strings can be indexed" if not isinstance(
                        t, T.RecordT) else "read a field with `.name`")
        return T.UNKNOWN

    # -- literals ---------------------------------------------------------------------
    def x_Literal(self, e: A.Literal, expected) -> T.Type:
        return _LITERAL_TYPES.get(e.kind, T.UNKNOWN)

    def x_Interpolated(self, e: A.Interpolated, expected) -> T.Type:
        for p in e.parts:
            if not isinstance(p, str):
                t = self.expr(p)
                self.swallow(p, t)
        return T.STR

    def x_ListLit(self, e: A.ListLit, expected) -> T.Type:
        exp = T.strip_optional(expected) if expected is not None else None
        if isinstance(exp, T.ListT):
            # one type mismatch per literal: `[1, 2, 3]` for a list[str] is one mistake
            code = self.mismatch_code
            mismatched = False
            for item in e.items:
                with self.quiet() as found:
                    self.expect(item, exp.elem, code, what="list item")
                for d in found:
                    if d.code == code and d.span == item.span:
                        if mismatched:
                            continue
                        mismatched = True
                    self.report(d.code, d.message, d.span, d.help, d.severity, d.labels)
            return exp
        if exp == T.JSON:
            for item in e.items:
                self.expr(item, T.JSON)
            return T.ListT(T.JSON)
        if not e.items:
            return T.ListT(T.UNKNOWN)
        elem: T.Type | None = None
        for item in e.items:
            t = self.expr(item)
            if elem is None:
                elem = t
                continue
            u = T.unify(elem, t)
            if u is None:
                self.report("E0201", f"list items must have one type: expected {q(elem)}, "
                                     f"found {q(t)}", item.span,
                            help="use `json` items (`let xs: list[json] = [...]`) "
                                 "to mix types")
            else:
                elem = u
        return T.ListT(elem if elem is not None else T.UNKNOWN)

    def x_RecordLit(self, e: A.RecordLit, expected) -> T.Type:
        exp = T.strip_optional(expected) if expected is not None else None
        code = self.mismatch_code
        if isinstance(exp, T.MapT):
            for f in e.fields:
                self.expect(f.value, exp.elem, code, what=f"map entry `{f.name}`")
            if e.fields:
                self.report(code, f"expected {q(exp)}, found a record literal", e.span,
                            help="map literals quote their keys: `{\"" + e.fields[0].name
                                 + "\": ...}`")
            return exp
        if isinstance(exp, T.RecordT):
            for f in e.fields:
                ft = exp.field(f.name)
                if ft is None:
                    given = {x.name for x in e.fields}
                    guess = did_you_mean(f.name, [x.name for x in exp.fields
                                                  if x.name not in given])
                    self.report("E0207", f"field `{f.name}` is not part of {q(exp)}",
                                f.name_span,
                                help=f"did you mean `{guess}`?" if guess else
                                "remove it; the fields are " + ", ".join(
                                    f"`{x.name}`" for x in exp.fields))
                    self.expr(f.value)
                    continue
                self.expect(f.value, ft.type, code, what=f"field `{f.name}`")
            given = {f.name for f in e.fields}
            missing = [x for x in exp.fields if not x.has_default and x.name not in given]
            if missing:
                names = ", ".join(f"`{x.name}`" for x in missing)
                s = "s" if len(missing) > 1 else ""
                self.report(code, f"missing field{s} {names} of {q(exp)}", e.span,
                            help="add " + ", ".join(f"`{x.name}: <{x.type.show()}>`"
                                                   for x in missing))
            return exp
        inner = T.JSON if exp == T.JSON else None
        fields = []
        for f in e.fields:
            fields.append(T.FieldT(f.name, self.expr(f.value, inner)))
        return T.RecordT(tuple(fields))

    def x_MapLit(self, e: A.MapLit, expected) -> T.Type:
        exp = T.strip_optional(expected) if expected is not None else None
        if isinstance(exp, T.MapT):
            for m in e.entries:
                self.expect(m.value, exp.elem, self.mismatch_code, what=f"map entry \"{m.key}\"")
            return exp
        if isinstance(exp, T.RecordT):
            for m in e.entries:
                self.expr(m.value)
            self.report(self.mismatch_code, f"expected {q(exp)}, found a map literal", e.span,
                        help="record fields are written without quotes: `{name: value}`")
            return exp
        if exp == T.JSON:
            for m in e.entries:
                self.expr(m.value, T.JSON)
            return T.MapT(T.JSON)
        elem: T.Type | None = None
        for m in e.entries:
            t = self.expr(m.value)
            if elem is None:
                elem = t
                continue
            u = T.unify(elem, t)
            if u is None:
                self.report("E0201", f"map values must have one type: expected {q(elem)}, "
                                     f"found {q(t)}", m.value.span,
                            help="use `map[json]` to mix types")
            else:
                elem = u
        return T.MapT(elem if elem is not None else T.UNKNOWN)

    # -- operators --------------------------------------------------------------------
    def x_Unary(self, e: A.Unary, expected) -> T.Type:
        if e.op == "not":
            self.expect(e.operand, T.BOOL, what="`not` operand")
            return T.BOOL
        t = self.expr(e.operand)
        if t in (T.INT, T.FLOAT, T.DURATION, T.JSON) or isinstance(t, T.Unknown):
            return t
        self.report("E0201", f"cannot negate {q(t)}", e.span,
                    help=mismatch_help(T.FLOAT, t))
        return T.UNKNOWN

    def x_Binary(self, e: A.Binary, expected) -> T.Type:
        op = e.op
        if op == "??":
            return self.coalesce(e, expected)
        if op in ("and", "or"):
            self.expect(e.left, T.BOOL, what=f"`{op}` operand")
            facts = self.null_facts(e.left)
            narrow = facts[0] if op == "and" else facts[1]
            with self.narrowed(narrow), self.lazy():
                self.expect(e.right, T.BOOL, what=f"`{op}` operand")
            return T.BOOL
        lt = self.expr(e.left)
        rt = self.expr(e.right)
        if isinstance(lt, T.Unknown) or isinstance(rt, T.Unknown):
            if op in ("==", "!=", "in") or op in _ORDER:
                return T.BOOL
            if op == "/":
                return T.FLOAT
            return T.UNKNOWN
        if op in ("==", "!="):
            if T.unify(lt, rt) is None and not self._comparable(lt, rt):
                self.report("E0201", f"cannot compare {q(lt)} with {q(rt)}", e.span,
                            help=mismatch_help(lt, rt))
            return T.BOOL
        if op in _ORDER:
            if not self._ordered(lt, rt):
                self.report("E0201", f"cannot order {q(lt)} and {q(rt)} with `{op}`", e.span,
                            help=self._opt_help(lt, rt) or
                            "numbers, strings and durations can be compared with `<`")
            return T.BOOL
        if op == "in":
            return self._in(e, lt, rt)
        return self.arith(e, op, lt, rt)

    @staticmethod
    def _comparable(a: T.Type, b: T.Type) -> bool:
        return a == T.JSON or b == T.JSON or T.assignable(a, b) or T.assignable(b, a)

    @staticmethod
    def _ordered(a: T.Type, b: T.Type) -> bool:
        if a == T.JSON or b == T.JSON:
            return True
        if a in (T.INT, T.FLOAT) and b in (T.INT, T.FLOAT):
            return True
        return a == b and (a in (T.STR, T.DURATION) or isinstance(a, T.EnumT))

    @staticmethod
    def _opt_help(a: T.Type, b: T.Type) -> str | None:
        if isinstance(a, T.Optional) or isinstance(b, T.Optional):
            return "a value may be null; use `x ?? default`, or check `x != null` first"
        return None

    def _in(self, e: A.Binary, lt: T.Type, rt: T.Type) -> T.Type:
        if isinstance(rt, T.ListT):
            if not self._comparable(lt, rt.elem) and T.unify(lt, rt.elem) is None:
                self.report("E0201", f"cannot look for {q(lt)} in {q(rt)}", e.span)
        elif isinstance(rt, T.MapT) or rt == T.STR:
            if not T.assignable(lt, T.STR) and lt != T.JSON:
                self.report("E0201", f"`in` {q(rt)} needs a `str` on the left, found {q(lt)}",
                            e.left.span)
        elif rt != T.JSON:
            self.report("E0201", f"`in` needs a list, a map or a `str` on the right, "
                                 f"found {q(rt)}", e.right.span, help=self._opt_help(lt, rt))
        return T.BOOL

    def arith(self, e: A.Binary, op: str, lt: T.Type, rt: T.Type) -> T.Type:
        if lt == T.JSON or rt == T.JSON:
            return T.FLOAT if op == "/" else T.JSON
        num = (T.INT, T.FLOAT)
        if lt in num and rt in num:
            if op == "/":
                return T.FLOAT
            return T.INT if lt == T.INT and rt == T.INT else T.FLOAT
        if op == "+":
            if lt == T.STR and rt == T.STR:
                return T.STR
            if isinstance(lt, T.ListT) and isinstance(rt, T.ListT):
                u = T.unify(lt.elem, rt.elem)
                if u is not None:
                    return T.ListT(u)
            if lt == T.DURATION and rt == T.DURATION:
                return T.DURATION
        if op == "-" and lt == T.DURATION and rt == T.DURATION:
            return T.DURATION
        if op == "*" and {lt, rt} == {T.DURATION, T.INT}:
            return T.DURATION
        if op in ("/", "//") and lt == T.DURATION and rt == T.INT:
            return T.DURATION
        help = self._opt_help(lt, rt)
        if help is None and op == "+" and T.STR in (lt, rt):
            help = "convert with `str(x)`, or interpolate: `\"${a}${b}\"`"
        self.report("E0201", f"cannot apply `{op}` to {q(lt)} and {q(rt)}", e.span, help=help)
        return T.UNKNOWN

    def coalesce(self, e: A.Binary, expected) -> T.Type:
        lt = self.expr(e.left)
        inner = T.strip_optional(lt) if lt != T.NULL else T.UNKNOWN
        hint = expected if expected is not None and not isinstance(inner, T.RecordT) else inner
        if isinstance(hint, T.Unknown) and expected is not None:
            hint = expected
        with self.lazy():
            rt = self.expr(e.right, hint if not isinstance(hint, T.Unknown) else None)
        if isinstance(lt, T.Unknown) or isinstance(rt, T.Unknown):
            return T.UNKNOWN if isinstance(rt, T.Unknown) else (
                rt if isinstance(lt, T.Unknown) else inner)
        if T.assignable(rt, inner) and not T.is_optional(rt):
            return inner
        u = T.unify(inner, rt)
        if u is None:
            self.report("E0201", f"`??` needs a fallback of type {q(inner)}, found {q(rt)}",
                        e.right.span, help=mismatch_help(inner, rt))
            return inner
        return u

    def x_IfExpr(self, e: A.IfExpr, expected) -> T.Type:
        self.expect(e.cond, T.BOOL, what="condition")
        when_true, when_false = self.null_facts(e.cond)
        with self.lazy():
            with self.narrowed(when_true):
                a = self.expr(e.then, expected)
            with self.narrowed(when_false):
                b = self.expr(e.orelse, expected if expected is not None else
                              (a if not isinstance(a, T.Unknown) else None))
        u = T.unify(a, b)
        if u is None:
            self.report("E0201", f"`if` and `else` have different types: {q(a)} and {q(b)}",
                        e.orelse.span, help=mismatch_help(a, b))
            return T.UNKNOWN
        return u

    # -- null checks --------------------------------------------------------------------
    def null_facts(self, cond: A.Expr) -> tuple[dict, dict]:
        """Names known non-null when ``cond`` is true / false: ``{name: (binding, type)}``."""
        if isinstance(cond, A.Binary):
            if cond.op in ("==", "!="):
                name = None
                if isinstance(cond.right, A.Literal) and cond.right.kind == "null":
                    name = cond.left
                elif isinstance(cond.left, A.Literal) and cond.left.kind == "null":
                    name = cond.right
                if isinstance(name, A.Name):
                    found = self.lookup_local(name.id)
                    if found is not None and isinstance(found[1], T.Optional):
                        fact = {name.id: (found[0], found[1].inner)}
                        return ({}, fact) if cond.op == "==" else (fact, {})
                return {}, {}
            if cond.op == "and":
                t1, _ = self.null_facts(cond.left)
                t2, _ = self.null_facts(cond.right)
                return {**t1, **t2}, {}
            if cond.op == "or":
                _, f1 = self.null_facts(cond.left)
                _, f2 = self.null_facts(cond.right)
                return {}, {**f1, **f2}
        if isinstance(cond, A.Unary) and cond.op == "not":
            t, f = self.null_facts(cond.operand)
            return f, t
        return {}, {}

    # -- comprehensions -----------------------------------------------------------------
    def iter_elem(self, iterable: A.Expr) -> T.Type:
        t = self.expr(iterable)
        if isinstance(t, T.ListT):
            return t.elem
        if t == T.JSON or isinstance(t, T.Unknown):
            return t
        if T.is_optional(t):
            self.report("E0206", f"cannot iterate over {self.describe_expr(iterable)}, which "
                                 f"may be null (type {q(t)})", iterable.span,
                        help="add `?? []`, or check for null first")
            inner = T.strip_optional(t)
            return inner.elem if isinstance(inner, T.ListT) else T.UNKNOWN
        help = None
        if isinstance(t, T.MapT):
            help = "iterate over `keys(m)` or `values(m)`"
        elif t == T.INT:
            help = "iterate over `range(n)`"
        self.report("E0201", f"expected a list to iterate over, found {q(t)}", iterable.span,
                    help=help)
        return T.UNKNOWN

    def x_Comprehension(self, e: A.Comprehension, expected) -> T.Type:
        elem = self.iter_elem(e.iterable)
        exp = T.strip_optional(expected) if expected is not None else None
        with self.child_scope() as scope, self.lazy():
            b = Binding(e.var, elem, "comprehension", e.var_span, e, used=True)
            scope.declare(b)
            self.bindings[e] = b
            narrow = {}
            if e.cond is not None:
                self.expect(e.cond, T.BOOL, what="comprehension filter")
                narrow = self.null_facts(e.cond)[0]
            with self.narrowed(narrow):
                if isinstance(exp, T.ListT):
                    t = self.expect(e.elem, exp.elem, self.mismatch_code, what="list item")
                else:
                    t = self.expr(e.elem)
        return T.ListT(t)

    # -- calls --------------------------------------------------------------------------
    def resolve_callee(self, func: A.Expr):
        """('node'|'workflow', info) | ('builtin', name) | None (reported)."""
        if isinstance(func, A.Name):
            found = self.lookup_local(func.id)
            if found is not None:
                binding, t = found
                binding.used = True
                self.names[func] = NameRef("local", binding)
                extra = (f"; the builtin `{func.id}` is shadowed by it"
                         if func.id in BUILTIN_NAMES else "")
                self.report("E0102", f"`{func.id}` is a local value of type {q(t)}, not a node, "
                                     f"workflow or function{extra}", func.span,
                            help="rename the binding" if extra else None)
                return None
            sym = self.mod.scope.get(func.id)
            if isinstance(sym, (NodeInfo, WorkflowInfo)):
                return self.step_callee(func, sym)
            if sym is not None:
                help = None
                if isinstance(sym, TypeInfo):
                    help = "build a record with a literal: `{field: value, ...}`"
                self.report("E0102", f"{describe_symbol(sym)} cannot be called", func.span,
                            help=help)
                return None
            if func.id in BUILTIN_NAMES:
                self.names[func] = NameRef("builtin", func.id)
                return ("builtin", func.id)
            self.unknown_callee(func.id, func.span, self.mod)
            return None
        if isinstance(func, A.Attribute) and not func.optional:
            target = self.static_ref(func.obj)
            if isinstance(target, ModuleInfo):
                if target.parse_failed:
                    return None
                sym = exported(target, func.name)
                if isinstance(sym, (NodeInfo, WorkflowInfo)):
                    return self.step_callee(func, sym)
                if sym is not None:
                    self.report("E0102", f"{describe_symbol(sym)} of module `{target.name}` "
                                         f"cannot be called", func.name_span)
                    return None
                guess = did_you_mean(func.name, exported_names(target, (NodeInfo,
                                                                         WorkflowInfo)))
                self.report("E0102", f"module `{target.name}` has no node or workflow "
                                     f"`{func.name}`", func.name_span,
                            help=f"did you mean `{guess}`?" if guess else None)
                return None
            if func.name in BUILTIN_NAMES:
                self.expr(func.obj)
                self.report("E0102", f"`{func.name}` is a builtin function, not a method",
                            func.span, help=f"write `{func.name}(x, ...)`")
                return None
        before = self.error_count
        self.expr(func)
        if self.error_count == before:
            self.report("E0102", "only nodes, workflows and builtin functions can be called",
                        func.span)
        return None

    def step_callee(self, func: Any, sym: NodeInfo | WorkflowInfo) -> tuple[str, Any]:
        """Record what a call position names: a node or a workflow."""
        self.names[func] = NameRef(sym.kind, sym)
        return (sym.kind, sym)

    def unknown_callee(self, name: str, span: A.Span, mod: ModuleInfo) -> None:
        local = [n for n, s in mod.scope.items() if isinstance(s, (NodeInfo, WorkflowInfo))]
        imported = {}
        for alias, m in mod.scope.items():
            if isinstance(m, ModuleInfo):
                for n in exported_names(m, (NodeInfo, WorkflowInfo)):
                    imported.setdefault(n, f"{alias}.{n}")
        help = None
        if name in imported:
            help = f"`{name}` is declared in an imported module; write `{imported[name]}(...)`"
        else:
            guess = best_guess(name, [(n, n) for n in local + sorted(BUILTIN_NAMES)]
                               + [(n, q) for n, q in imported.items()])
            if guess:
                help = f"did you mean `{guess}`?"
        self.report("E0102", f"cannot find node, workflow or function `{name}`", span,
                    help=help)

    def x_Call(self, e: A.Call, expected) -> T.Type:
        target = self.resolve_callee(e.func)
        if target is None:
            for a in e.args:
                self.expr(a.value)
            return T.UNKNOWN
        kind, what = target
        if kind == "builtin":
            self.calls[e] = CallTarget("builtin", what)
            return self.builtin_call(e, what)
        self.calls[e] = CallTarget(kind, what)
        if self.const_ctx:
            self.report("E0201", f"{self.const_ctx} cannot call {kind} `{what.name}`", e.span,
                        help="only literals, constants, enum members and builtin functions "
                             "are allowed here")
        elif self.lazy_depth:
            self.report("E0201", f"{kind} `{what.name}` cannot be called inside a condition, "
                                 f"a fallback or a comprehension", e.span,
                        help="a step runs unconditionally; bind it first with "
                             f"`let x = {what.name}(...)`, or use an `if` statement / `for` "
                             "loop")
        self.step_calls.append(e)
        return self.step_args(e, what)

    def step_args(self, e: A.Call, info: Any) -> T.Type:
        sig = self.signature(info)
        params = {p.name: p for p in sig.params}
        given: set[str] = set()
        covered: set[str] = set()  # required params a misspelled argument stands for
        for i, a in enumerate(e.args):
            if a.name is None:
                hint = ""
                if i < len(sig.params):
                    hint = f": write `{sig.params[i].name}: ...`"
                self.report("E0203", f"arguments to {info.kind} `{info.name}` are named{hint}",
                            a.span)
                if i < len(sig.params):
                    p = sig.params[i]
                    given.add(p.name)
                    self.expect(a.value, p.type)
                else:
                    self.expr(a.value)
                continue
            p = params.get(a.name)
            if p is None:
                remaining = [n for n in params if n not in given and
                             n not in {x.name for x in e.args if x.name}]
                guess = did_you_mean(a.name, remaining) or did_you_mean(a.name, list(params))
                if guess:
                    covered.add(guess)
                    help = f"did you mean `{guess}`?"
                elif params:
                    help = f"`{info.name}` takes " + ", ".join(
                        f"`{n}`" for n in params)
                else:
                    help = f"`{info.name}` takes no arguments"
                self.report("E0203", f"{info.kind} `{info.name}` has no parameter `{a.name}`",
                            a.name_span, help=help)
                self.expr(a.value)
                continue
            given.add(a.name)
            self.expect(a.value, p.type, what=f"argument `{a.name}`")
        missing = [p for p in sig.params if not p.has_default and p.name not in given
                   and p.name not in covered]
        if missing:
            names = ", ".join(f"`{p.name}`" for p in missing)
            s = "s" if len(missing) > 1 else ""
            self.report("E0202", f"missing argument{s} {names} in call to {info.kind} "
                                 f"`{info.name}`", e.span,
                        help="add " + ", ".join(f"`{p.name}: <{p.type.show()}>`"
                                               for p in missing))
        return sig.result

    def builtin_call(self, e: A.Call, name: str) -> T.Type:
        lo, hi, pnames = SIGNATURES[name]
        types: list[T.Type] = []
        for a in e.args:
            if a.name is not None:
                self.report("E0203", f"builtin `{name}` takes positional arguments",
                            a.name_span, help=f"write `{name}(" + ", ".join(pnames) + ")`")
            t = self.expr(a.value)
            if name == "str":
                self.swallow(a.value, t)
            types.append(t)
        n = len(e.args)
        sig = f"`{name}(" + ", ".join(
            p if i < lo else f"{p}?" for i, p in enumerate(pnames)) + ")`"
        if n < lo:
            missing = ", ".join(f"`{p}`" for p in pnames[n:lo])
            self.report("E0202", f"missing argument {missing} in call to {sig}", e.span)
            return T.UNKNOWN
        if n > hi:
            self.report("E0203", f"too many arguments: {sig} takes "
                                 f"{'no' if hi == 0 else hi} argument{'s' if hi != 1 else ''}",
                        e.args[hi].span)
            return T.UNKNOWN

        def bad(i: int, expected_text: str, help: str | None = None) -> None:
            self.report("E0201", f"`{name}` expects {expected_text} as `{pnames[i]}`, "
                                 f"found {q(types[i])}", e.args[i].value.span, help=help)

        return check_builtin(name, e.args, types, bad)

    # -- statement-level expressions -------------------------------------------------------
    def x_TryElse(self, e: A.TryElse, expected) -> T.Type:
        a = self.step_expr(e.primary, expected, "try")
        b = self.step_expr(e.fallback, expected if expected is not None else
                           (a if not isinstance(a, T.Unknown) else None), "else")
        u = T.unify(a, b)
        if u is None:
            self.report("E0201", f"the fallback's type differs: expected {q(a)} (the type of "
                                 f"the first step), found {q(b)}", e.fallback.span,
                        help="both steps of `try ... else ...` must return the same type")
            return a
        return u

    def step_expr(self, e: A.Expr, expected, where: str) -> T.Type:
        t = self.expr(e, expected)
        is_step = (isinstance(e, A.Call) and e in self.calls
                   and self.calls[e].kind in ("node", "workflow"))
        already_reported = isinstance(t, T.Unknown) or (isinstance(e, A.Call)
                                                        and e not in self.calls)
        if not is_step and not already_reported:
            self.report("E0201", f"`{where}` needs a node or workflow call here",
                        e.span, help="write `try Node(...) else Other(...)`")
        return t

    def x_Wait(self, e: A.Wait, expected) -> T.Type:
        if e.timeout is not None:
            self.expect(e.timeout, T.DURATION, what="wait timeout")
        self.waits.setdefault(e, T.JSON)
        return T.JSON

    def x_For(self, e: A.For, expected) -> T.Type:
        return self.check_for(e, as_value=True)
