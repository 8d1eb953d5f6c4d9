"""Evaluating constant expressions at check time.

Module constants, field and parameter defaults, and attribute arguments are pure
expressions over literals, other constants, enum members and deterministic builtins.
The checker types them first; this module computes their values. Anything else (a
local, a step call, ``now()``) raises :class:`NotConstant`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..grammar import ast as A
from .builtins import IMPLS, NONDETERMINISTIC, format_value


class NotConstant(Exception):
    def __init__(self, node: Any, why: str):
        super().__init__(why)
        self.node, self.why = node, why


def evaluate(e: A.Expr, resolve: Callable[[Any], Any], call_name: Callable[[A.Call], Any],
             env: dict[str, Any] | None = None) -> Any:
    """Value of ``e``. ``resolve(expr)`` gives the value of a Name/Attribute that names a
    constant or an enum member (or raises NotConstant); ``call_name(call)`` the builtin
    a call targets (None when it is not a builtin)."""
    env = env or {}

    def ev(x: A.Expr, env: dict[str, Any]) -> Any:
        if isinstance(x, A.Literal):
            return x.value
        if isinstance(x, A.Interpolated):
            return "".join(p if isinstance(p, str) else format_value(ev(p, env))
                           for p in x.parts)
        if isinstance(x, A.Name):
            if x.id in env:
                return env[x.id]
            return resolve(x)
        if isinstance(x, A.Attribute):
            try:
                return resolve(x)
            except NotConstant:
                pass
            obj = ev(x.obj, env)
            if obj is None and x.optional:
                return None
            if isinstance(obj, dict) and x.name in obj:
                return obj[x.name]
            raise NotConstant(x, f"no field `{x.name}`")
        if isinstance(x, A.Index):
            obj, idx = ev(x.obj, env), ev(x.index, env)
            try:
                return obj[idx]
            except (KeyError, IndexError, TypeError) as exc:
                raise NotConstant(x, f"index out of range: {exc}") from None
        if isinstance(x, A.Unary):
            v = ev(x.operand, env)
            return (not v) if x.op == "not" else -v
        if isinstance(x, A.Binary):
            return binary(x, ev, env)
        if isinstance(x, A.IfExpr):
            return ev(x.then, env) if ev(x.cond, env) else ev(x.orelse, env)
        if isinstance(x, A.ListLit):
            return [ev(i, env) for i in x.items]
        if isinstance(x, A.RecordLit):
            return {f.name: ev(f.value, env) for f in x.fields}
        if isinstance(x, A.MapLit):
            return {m.key: ev(m.value, env) for m in x.entries}
        if isinstance(x, A.Comprehension):
            out = []
            for item in ev(x.iterable, env):
                inner = dict(env)
                inner[x.var] = item
                if x.cond is None or ev(x.cond, inner):
                    out.append(ev(x.elem, inner))
            return out
        if isinstance(x, A.Call):
            name = call_name(x)
            if name is None:
                raise NotConstant(x, "a step call is not a constant")
            if name in NONDETERMINISTIC:
                raise NotConstant(x, f"`{name}()` changes from run to run")
            args = [ev(a.value, env) for a in x.args]
            try:
                return IMPLS[name](*args)
            except Exception as exc:  # noqa: BLE001 - reported as not constant
                raise NotConstant(x, f"`{name}` failed: {exc}") from None
        raise NotConstant(x, "not a constant expression")

    return ev(e, env)


def binary(x: A.Binary, ev, env) -> Any:
    op = x.op
    left = ev(x.left, env)
    if op == "??":
        return left if left is not None else ev(x.right, env)
    if op == "and":
        return left and ev(x.right, env)
    if op == "or":
        return left or ev(x.right, env)
    right = ev(x.right, env)
    try:
        if op == "+":
            return left + right
        if op == "-":
            return left - right
        if op == "*":
            return left * right
        if op == "/":
            return left / right
        if op == "//":
            return left // right
        if op == "%":
            return left % right
        if op == "==":
            return left == right
        if op == "!=":
            return left != right
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        if op == ">=":
            return left >= right
        if op == "in":
            return left in right
    except (ZeroDivisionError, TypeError) as exc:
        raise NotConstant(x, str(exc)) from None
    raise NotConstant(x, f"unknown operator `{op}`")
