"""Effect-aware scheduling: which steps must wait for which (§6).

Adds an ``effect`` edge from every earlier step to a later one in the same region when
their effects conflict (write vs non-pure on a shared resource; no resource means every
resource). Steps with neither a data nor an effect path between them may overlap; inside
``parallel { }`` only data edges count, and inside a transaction every write waits for
the previous write. Example: two ``read`` probes get no edge and overlap; ``WriteX``
twice gets an edge and serialises. The VM enforces the same rule dynamically (a step
starts when earlier in-flight conflicting steps finish), so this pass's graph is what
``kflow graph`` shows and what tests compare against.
"""

from __future__ import annotations

from ..ir import IR, Region, conflicts


def _schedule(region: Region) -> None:
    ignore = region.kind == "parallel"
    serial_writes = region.kind == "tx"
    earlier = []
    for n in region.nodes:
        if n.effects and not ignore:
            for m in earlier:
                if m.effects and conflicts(m.effects, n.effects):
                    region.graph.add_edge(m.id, n.id, kind="effect")
                elif serial_writes and m.writes and n.writes:
                    region.graph.add_edge(m.id, n.id, kind="effect")
        earlier.append(n)
        for sub in n.regions:
            _schedule(sub)


def schedule_effects(ir: IR) -> IR:
    for wf in ir.workflows.values():
        _schedule(wf.body)
    return ir
