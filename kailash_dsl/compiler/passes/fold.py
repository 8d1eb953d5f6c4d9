"""Constant folding: arithmetic, comparisons and string joins of literals at compile time.

Example: ``let secs = 60 * 60 * 24`` compiles to ``LET secs 86400``; a folded
expression keeps the span of the original so runtime errors still point at the source.
Division by zero and other errors are left for run time, where they are reported with
the step's position.
"""

from __future__ import annotations

import operator

from ...grammar import ast as A
from ..ir import IR, iter_nodes

_OPS = {
    "+": operator.add, "-": operator.sub, "*": operator.mul,
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
    ">": operator.gt, ">=": operator.ge,
}


def _fold(e, rewrites: dict):
    """Return the folded form of ``e`` (a Literal) or None."""
    if e in rewrites:
        return rewrites[e]
    if isinstance(e, A.Literal):
        return e
    if isinstance(e, A.Binary) and e.op in _OPS:
        left, right = _fold(e.left, rewrites), _fold(e.right, rewrites)
        if left is None or right is None:
            return None
        lv, rv = left.value, right.value
        kinds = {left.kind, right.kind}
        if kinds <= {"int", "float"} or (e.op == "+" and kinds == {"str"}) \
                or (e.op in ("==", "!=") and left.kind == right.kind):
            if e.op in ("<", "<=", ">", ">=") and not kinds <= {"int", "float"}:
                return None
            value = _OPS[e.op](lv, rv)
            kind = "bool" if isinstance(value, bool) else (
                "str" if isinstance(value, str) else (
                    "float" if isinstance(value, float) else "int"))
            lit = A.Literal(value, kind, e.span)
            rewrites[e] = lit
            return lit
        return None
    if isinstance(e, A.Unary):
        inner = _fold(e.operand, rewrites)
        if inner is None:
            return None
        if e.op == "-" and inner.kind in ("int", "float"):
            lit = A.Literal(-inner.value, inner.kind, e.span)
        elif e.op == "not" and inner.kind == "bool":
            lit = A.Literal(not inner.value, "bool", e.span)
        else:
            return None
        rewrites[e] = lit
        return lit
    return None


def fold_constants(ir: IR) -> IR:
    for wf in ir.workflows.values():
        for n in iter_nodes(wf.body):
            for sub in A.walk(n.stmt):
                if isinstance(sub, (A.Binary, A.Unary)) and sub not in ir.rewrites:
                    folded = _fold(sub, ir.rewrites)
                    if folded is not None:
                        t = ir.program.types.get(sub)
                        if t is not None:
                            ir.program.types[folded] = t
    return ir
