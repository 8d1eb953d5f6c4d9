"""Pure expressions → Python source.

Expressions are the hot path of the interpreter, so instead of a stack machine they are
compiled once to a small Python function ``(S, R) -> value`` (``S`` the frame's slots,
``R`` the runtime helpers in :mod:`kailash_dsl.runtime.values`; slot 0 always holds the
frame itself, for the journaled builtins), the way Jinja2 compiles
templates to Python. The source text is what the bytecode stores and disassembles; the
Python code object is built lazily when the program is loaded.

Step calls never appear here: the code generator hoists them into their own slots first.
"""

from __future__ import annotations

import math

from dataclasses import dataclass, field
from typing import Any, Callable

from ..grammar import ast as A
from . import types as T
from .program import ConstInfo, Program

_BINOPS = {"+": "+", "-": "-", "*": "*", "==": "==", "!=": "!=", "<": "<",
           "<=": "<=", ">": ">", ">=": ">="}
#: builtins whose result depends on the outside world: journaled (§7 rule 1)
NONDETERMINISTIC = {"uuid", "now", "random", "env", "secret"}


@dataclass
class ExprCode:
    """One compiled expression: its Python source and the slots it reads."""

    source: str
    reads: frozenset[int]
    nondet: int = 0  # how many non-deterministic builtin calls it makes
    _fn: Callable | None = field(default=None, repr=False, compare=False)

    def fn(self) -> Callable:
        if self._fn is None:
            self._fn = compile_lambda(self.source)
        return self._fn

    def __getstate__(self):
        return (self.source, self.reads, self.nondet)

    def __setstate__(self, state):
        self.source, self.reads, self.nondet = state
        self._fn = None


_LAMBDA_CACHE: dict[str, Callable] = {}


def compile_lambda(source: str) -> Callable:
    fn = _LAMBDA_CACHE.get(source)
    if fn is None:
        code = f"def _e(S, R):\n    return {source}\n"
        ns: dict[str, Any] = {}
        exec(compile(code, "<kflow-expr>", "exec"), ns)  # noqa: S102 - generated code
        fn = _LAMBDA_CACHE[source] = ns["_e"]
    return fn


class ExprCompiler:
    """Turns one expression into Python source, given how names map to slots."""

    def __init__(self, program: Program, slot_of: Callable[[Any], int],
                 hoisted: dict[Any, int] | None = None, site: str = "",
                 rewrites: dict | None = None) -> None:
        self.program = program
        self.rewrites = rewrites or {}
        self.slot_of = slot_of  # Binding -> slot index
        self.hoisted = hoisted or {}  # Call node -> slot holding its step result
        self.site = site
        self.reads: set[int] = set()
        self.locals: dict[str, str] = {}  # comprehension variables -> python names
        self.tmp = 0
        self.nondet = 0

    def compile(self, e: A.Expr) -> ExprCode:
        src = self.expr(e)
        return ExprCode(src, frozenset(self.reads), self.nondet)

    # ------------------------------------------------------------------------
    def _slot(self, slot: int) -> str:
        self.reads.add(slot)
        return f"S[{slot}]"

    def expr(self, e: A.Expr) -> str:
        if e in self.rewrites:
            e = self.rewrites[e]
        if e in self.hoisted:
            return self._slot(self.hoisted[e])
        m = getattr(self, "e_" + type(e).__name__, None)
        if m is None:
            raise NotImplementedError(f"cannot compile {type(e).__name__} at {e.span}")
        return m(e)

    def e_Literal(self, e: A.Literal) -> str:
        return _const(e.value)

    def e_Interpolated(self, e: A.Interpolated) -> str:
        parts = []
        for p in e.parts:
            if isinstance(p, str):
                parts.append(repr(p))
            else:
                parts.append(f"{self._text_fn(p)}({self.expr(p)})")
        return "(" + " + ".join(parts) + ")" if parts else "''"

    def _text_fn(self, e: A.Expr) -> str:
        t = self.program.types.get(e)
        return "R.dur_text" if t is not None and T.strip_optional(t) == T.DURATION \
            else "R.text"

    def e_Name(self, e: A.Name) -> str:
        if e.id in self.locals:
            return self.locals[e.id]
        ref = self.program.names.get(e)
        if ref is None:
            raise NotImplementedError(f"unresolved name `{e.id}` at {e.span}")
        return self._ref(ref, e)

    def _ref(self, ref, e) -> str:
        if ref.kind == "local":
            return self._slot(self.slot_of(ref.target))
        if ref.kind == "const":
            target: ConstInfo = ref.target
            return _const(target.value)
        if ref.kind == "enum_member":
            return repr(ref.target[1])
        raise NotImplementedError(f"`{ref.kind}` is not a value at {e.span}")

    def e_Attribute(self, e: A.Attribute) -> str:
        ref = self.program.names.get(e)
        if ref is not None:
            return self._ref(ref, e)
        obj = self.expr(e.obj)
        if e.optional:
            return f"R.opt_field({obj}, {e.name!r})"
        return f"{obj}[{e.name!r}]"

    def e_Index(self, e: A.Index) -> str:
        return f"R.index({self.expr(e.obj)}, {self.expr(e.index)})"

    def e_Unary(self, e: A.Unary) -> str:
        if e.op == "not":
            return f"(not {self.expr(e.operand)})"
        return f"(-{self.expr(e.operand)})"

    def e_Binary(self, e: A.Binary) -> str:
        op = e.op
        left = self.expr(e.left)
        if op == "??":
            self.tmp += 1
            t = f"_t{self.tmp}"
            right = self.expr(e.right)
            return f"({t} if ({t} := {left}) is not None else {right})"
        right = self.expr(e.right)
        if op == "and":
            return f"({left} and {right})"
        if op == "or":
            return f"({left} or {right})"
        if op == "in":
            return f"R.contains({right}, {left})"
        if op == "/":
            if self.program.types.get(e) == T.DURATION:
                # a duration is whole milliseconds: `1h / 3` rounds down, like `//`
                return f"R.floordiv({left}, {right})"
            return f"R.div({left}, {right})"
        if op == "//":
            return f"R.floordiv({left}, {right})"
        if op == "%":
            return f"R.mod({left}, {right})"
        if op in ("==", "!="):
            return f"({'' if op == '==' else 'not '}R.eq({left}, {right}))"
        return f"({left} {_BINOPS[op]} {right})"

    def e_IfExpr(self, e: A.IfExpr) -> str:
        return f"({self.expr(e.then)} if {self.expr(e.cond)} else {self.expr(e.orelse)})"

    def e_ListLit(self, e: A.ListLit) -> str:
        return "[" + ", ".join(self.expr(x) for x in e.items) + "]"

    def e_RecordLit(self, e: A.RecordLit) -> str:
        items = [f"{f.name!r}: {self.expr(f.value)}" for f in e.fields]
        # fill defaults of the expected record type (a literal may omit defaulted fields)
        t = self.program.types.get(e)
        if isinstance(t, T.Optional):
            t = t.inner
        if isinstance(t, T.RecordT):
            given = {f.name for f in e.fields}
            for f in t.fields:
                if f.name not in given and f.has_default:
                    items.append(f"{f.name!r}: {f.default!r}")
                elif f.name not in given and T.is_optional(f.type):
                    items.append(f"{f.name!r}: None")
        return "{" + ", ".join(items) + "}"

    def e_MapLit(self, e: A.MapLit) -> str:
        return "{" + ", ".join(f"{m.key!r}: {self.expr(m.value)}" for m in e.entries) + "}"

    def e_Comprehension(self, e: A.Comprehension) -> str:
        self.tmp += 1
        var = f"_v{self.tmp}"
        iterable = self.expr(e.iterable)
        saved = self.locals.get(e.var)
        self.locals[e.var] = var
        try:
            elem = self.expr(e.elem)
            cond = f" if {self.expr(e.cond)}" if e.cond is not None else ""
        finally:
            if saved is None:
                self.locals.pop(e.var, None)
            else:
                self.locals[e.var] = saved
        return f"[{elem} for {var} in R.iterate({iterable}){cond}]"

    def e_Call(self, e: A.Call) -> str:
        target = self.program.calls.get(e)
        if target is None or target.kind != "builtin":
            raise NotImplementedError(f"step call not hoisted at {e.span}")
        name = target.target
        args = [self.expr(a.value) for a in e.args]
        if name in NONDETERMINISTIC:
            self.nondet += 1
            return f"R.nondet(S[0], {self.site!r}, {self.nondet}, {name!r}, [{', '.join(args)}])"
        if name == "str" and len(e.args) == 1 and self._text_fn(e.args[0].value) != "R.text":
            return f"R.dur_text({args[0]})"
        return f"R.b_{name}({', '.join(args)})"


def _const(v: Any) -> str:
    """A constant as Python source: ``repr`` but for non-finite floats (``1e400`` folds
    to infinity, whose repr ``inf`` is not a Python expression)."""
    if isinstance(v, float) and not math.isfinite(v):
        return f"float({str(v)!r})"
    if isinstance(v, list):
        return "[" + ", ".join(_const(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k!r}: {_const(x)}" for k, x in v.items()) + "}"
    return repr(v)
