"""Checkpoint placement: the fewest journal flushes that satisfy §7 rule 1.

Rule 1 says a completed non-pure step's outcome (and every journaled builtin value) is
durable before any *write* step that starts after it, before a wait/sleep, and before
the run's result is reported. Waits, sleeps and the final result commit the journal
themselves, so the only flushes to place are before write steps — and only before those
that some earlier non-pure work can precede. Example::

    let a = Probe()      # read
    let b = Probe()      # read
    let w = Write(...)   # FLUSH here: one group commit covers a and b
    let m = Pure(...)    # no flush

A loop body that does non-pure work makes its own writes "dirty" from the second
iteration on. At run time a placed flush with nothing pending costs nothing.
"""

from __future__ import annotations

from ...grammar import ast as A
from ..exprs import NONDETERMINISTIC
from ..ir import IR, IRNode, Region


def _nondet(n: IRNode, ir: IR) -> bool:
    for x in A.walk(n.stmt):
        if isinstance(x, A.Call):
            t = ir.program.calls.get(x)
            if t is not None and t.kind == "builtin" and t.target in NONDETERMINISTIC:
                return True
    return False


def _any_dirty(region: Region, ir: IR) -> bool:
    for n in region.nodes:
        if n.dead:
            continue
        if n.effects or _nondet(n, ir) or n.kind in ("wait", "sleep"):
            return True
        if any(_any_dirty(r, ir) for r in n.regions):
            return True
    return False


def _place(region: Region, dirty: bool, ir: IR) -> bool:
    for n in region.nodes:
        if n.dead:
            continue
        for h in n.hoisted.values():
            if h.writes and dirty:
                h.flush_before = True
            if h.effects:
                dirty = True
        if n.kind == "step":
            if n.writes and dirty:
                n.flush_before = True
            if n.effects or _nondet(n, ir):
                dirty = True
        elif n.kind == "for":
            body = n.regions[0]
            loop_dirty = dirty or _any_dirty(body, ir)
            _place(body, loop_dirty, ir)
            dirty = dirty or _any_dirty(body, ir)
        elif n.regions:
            results = [_place(r, dirty, ir) for r in n.regions]
            dirty = dirty or any(results)
        elif n.kind in ("wait", "sleep"):
            dirty = False  # parking commits the journal
        elif _nondet(n, ir):
            dirty = True
    return dirty


def place_checkpoints(ir: IR) -> IR:
    for wf in ir.workflows.values():
        _place(wf.body, False, ir)
    return ir
