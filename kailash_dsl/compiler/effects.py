"""Effect algebra of §6, shared by the compiler passes and the VM (no heavy imports)."""

from __future__ import annotations

from typing import Any


def node_effects(target: Any) -> frozenset:
    """The (effect, resource) pairs a call can perform; pure work contributes nothing."""
    kind = getattr(target, "kind", None)
    if kind == "node":
        if target.effect == "pure":
            return frozenset()
        return frozenset({(target.effect, target.resource)})
    if kind == "workflow":
        return frozenset((n.effect, n.resource) for n in target.reachable_nodes
                         if n.effect != "pure")
    return frozenset()


def conflicts(a: frozenset, b: frozenset) -> bool:
    """§6: write conflicts with any non-pure step on the same resource; no resource = all."""
    for e1, r1 in a:
        for e2, r2 in b:
            if e1 == "write" or e2 == "write":
                if r1 is None or r2 is None or r1 == r2:
                    return True
    return False
