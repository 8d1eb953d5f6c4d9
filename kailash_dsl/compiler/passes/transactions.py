"""Transaction lowering: attach the pattern the checker chose (§8) to each block.

Example: a block whose writes are all ``@transactional`` becomes ``TX 2pc``; one whose
writes all have ``@compensate`` (but the last) becomes ``TX saga`` with the last write as
its pivot. The reason is kept for ``kflow dis`` and ``check --explain``.
"""

from __future__ import annotations

from ..ir import IR, iter_nodes


def lower_transactions(ir: IR) -> IR:
    for wf in ir.workflows.values():
        for n in iter_nodes(wf.body):
            if n.kind == "tx":
                plan = ir.program.transactions.get(n.stmt)
                if plan is not None:
                    n.note = f"{plan.pattern}: {plan.reason}"
    return ir
