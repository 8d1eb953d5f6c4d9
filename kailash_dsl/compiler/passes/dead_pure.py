"""Dead pure-step elimination: a pure value or pure node call nobody reads is dropped.

Example: in ``let unused = Square(n: 3)`` with a ``pure`` Square and no reader of
``unused``, no instruction is emitted. Steps with effects are never dropped: their
effect is the point (§4: pure steps "may be re-run or skipped freely").
"""

from __future__ import annotations

from ...grammar import ast as A
from ..ir import IR, iter_nodes


def eliminate_dead_pure(ir: IR) -> IR:
    for wf in ir.workflows.values():
        read: set = set()
        nodes = list(iter_nodes(wf.body))
        for n in nodes:
            read |= n.reads
        for n in nodes:
            if n.kind not in ("value", "step") or n.effects:
                continue
            if n.kind == "step" and getattr(n.target, "kind", "") == "workflow":
                continue  # a workflow call may fail or emit; keep it
            if n.binds is None and n.kind == "value" or (n.binds is not None
                                                          and n.binds not in read):
                if any(isinstance(x, A.Call) and ir.program.calls.get(x) is not None
                       and ir.program.calls[x].kind == "builtin"
                       and ir.program.calls[x].target in ("uuid", "now", "random", "env",
                                                          "secret")
                       for x in A.walk(n.stmt)):
                    continue  # journaled values keep their place
                if n.hoisted:
                    continue
                n.dead = True
                n.note = "dead: pure and never read"
    return ir
