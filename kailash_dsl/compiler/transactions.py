"""Choosing the pattern of each `transaction` block (§8), and reachability.

1. **2pc** when every write step is a `@transactional` node and the block has no `wait`,
   `sleep`, nested transaction or workflow call;
2. else **saga** when every write step has `@compensate`, except possibly the block's
   last write step (the *pivot*);
3. else E0401 at each write step that has neither and is not the last one.

A pattern written on the block (`transaction saga { }`, `transaction 2pc { }`) that
cannot hold gives E0403 at each offending step instead.
"""

from __future__ import annotations

from ..grammar import ast as A
from .program import NodeInfo, TxPlan, WorkflowInfo


def iter_stmts(block: A.Block):
    """Every statement in ``block``, nested blocks included, in textual order."""
    for s in block.stmts:
        yield s
        if isinstance(s, A.If):
            for _, b in s.branches:
                yield from iter_stmts(b)
            if s.orelse is not None:
                yield from iter_stmts(s.orelse)
        elif isinstance(s, (A.For, A.Parallel, A.Transaction)):
            yield from iter_stmts(s.body)
        elif isinstance(s, A.Try):
            yield from iter_stmts(s.body)
            for c in s.catches:
                yield from iter_stmts(c.body)
        elif isinstance(s, A.Let) and isinstance(s.value, A.For):
            yield from iter_stmts(s.value.body)


def looped_stmts(block: A.Block) -> set[int]:
    """ids of the statements of ``block`` that sit inside a `for` (they may run many
    times)."""
    out: set[int] = set()
    for s in iter_stmts(block):
        body = s.body if isinstance(s, A.For) else (
            s.value.body if isinstance(s, A.Let) and isinstance(s.value, A.For) else None)
        if body is not None:
            out.update(id(x) for x in iter_stmts(body))
    return out


def _exprs_of(s) -> list:
    if isinstance(s, A.Let):
        if isinstance(s.value, A.For):
            return [s.value.iterable] + ([s.when] if s.when is not None else [])
        return [s.value] + ([s.when] if s.when is not None else [])
    if isinstance(s, A.ExprStmt):
        return [s.expr] + ([s.when] if s.when is not None else [])
    if isinstance(s, A.If):
        return [c for c, _ in s.branches]
    if isinstance(s, A.For):
        return [s.iterable]
    if isinstance(s, (A.Return, A.Yield)):
        return [s.value] if s.value is not None else []
    if isinstance(s, A.Fail):
        return [s.message]
    if isinstance(s, A.Emit):
        return [s.value] if s.value is not None else []
    if isinstance(s, A.Sleep):
        return [s.duration]
    return []


class TransactionPlanner:
    """Mixin: §8 transaction plans and workflow reachability."""

    # -- reachability --------------------------------------------------------------
    def reachable_nodes(self, wf: WorkflowInfo) -> list[NodeInfo]:
        out: list[NodeInfo] = []
        seen_nodes: set[int] = set()
        seen_wfs: set[int] = set()

        def add(n: NodeInfo) -> None:
            if id(n) not in seen_nodes:
                seen_nodes.add(id(n))
                out.append(n)
                if n.compensate is not None:
                    add(n.compensate)

        def visit(w: WorkflowInfo) -> None:
            if id(w) in seen_wfs:
                return
            seen_wfs.add(id(w))
            for call in self.wf_calls.get(id(w), ()):
                target = self.calls.get(call)
                if target is None:
                    continue
                if target.kind == "node":
                    add(target.target)
                elif target.kind == "workflow":
                    visit(target.target)

        visit(wf)
        return out

    def _writes_of_workflow(self, wf: WorkflowInfo) -> bool:
        return any(n.effect == "write" for n in wf.reachable_nodes)

    # -- plans ---------------------------------------------------------------------
    def plan_transaction(self, tx: A.Transaction) -> TxPlan:
        steps = []  # (call, stmt, info, kind, is_write)
        blockers = []  # (span, what)
        for s in iter_stmts(tx.body):
            if isinstance(s, A.Sleep):
                blockers.append((s.span, "a `sleep`"))
            elif isinstance(s, A.Transaction):
                blockers.append((s.span, "a nested transaction"))
            for e in _exprs_of(s):
                for n in A.walk(e):
                    if isinstance(n, A.Wait):
                        blockers.append((n.span, "a `wait`"))
                    elif isinstance(n, A.Call):
                        t = self.calls.get(n)
                        if t is None or t.kind == "builtin":
                            continue
                        info = t.target
                        if t.kind == "node":
                            write = info.effect == "write"
                        else:
                            write = self._writes_of_workflow(info)
                            blockers.append((n.span, f"a call of workflow `{info.name}`"))
                        steps.append((n, s, info, t.kind, write))
        steps.sort(key=lambda x: (x[0].span.line, x[0].span.column))
        writes = [x for x in steps if x[4]]
        blockers.sort(key=lambda b: (b[0].line, b[0].column))

        def transactional(x) -> bool:
            return x[3] == "node" and x[2].transactional is not None

        def compensated(x) -> bool:
            return x[3] == "node" and x[2].compensate is not None

        not_tx = [x for x in writes if not transactional(x)]
        can_2pc = bool(writes) and not not_tx and not blockers
        uncompensated = [x for x in writes[:-1] if not compensated(x)]
        pivot = writes[-1] if writes and not compensated(writes[-1]) else None
        if pivot is not None and id(pivot[1]) in looped_stmts(tx.body):
            # a write inside a loop runs again after it succeeded: it cannot be a pivot
            uncompensated.append(pivot)
            pivot = None
        can_saga = not uncompensated
        write_calls = tuple(x[0] for x in writes)

        def pivot_note() -> str:
            if pivot is None:
                return ""
            return f"; `{pivot[2].name}` is the pivot (the last write step, no @compensate)"

        if tx.kind == "2pc":
            if can_2pc or not writes and not blockers:
                names = ", ".join(f"`{x[2].name}`" for x in writes) or "none"
                return TxPlan("2pc", f"written `transaction 2pc`; participants: {names}",
                              None, write_calls)
            for x in not_tx:
                if x[3] == "workflow":
                    continue  # reported below as a blocker
                self.report("E0403", f"`transaction 2pc` needs every write step to be "
                                     f"@transactional; `{x[2].name}` is not", x[0].span,
                            help=f"mark node `{x[2].name}` "
                                 f"`@transactional(resource: \"...\")`, or write "
                                 f"`transaction saga` (or just `transaction`)")
            for span, what in blockers:
                self.report("E0403", f"`transaction 2pc` cannot contain {what}", span,
                            help="two-phase commit holds its participants prepared; "
                                 "move it out of the block, or use `transaction saga`")
            why = [f"`{x[2].name}` is not @transactional" for x in not_tx
                   if x[3] == "node"] + [f"it contains {what}" for _, what in blockers]
            return TxPlan("invalid", "written `transaction 2pc`, but " + ", ".join(why),
                          None, write_calls)
        if tx.kind == "saga":
            if can_saga:
                return TxPlan("saga", "written `transaction saga`" + pivot_note(),
                              pivot[1] if pivot else None, write_calls)
            for x in uncompensated:
                self.report("E0403", f"`transaction saga` needs every write step but the last "
                                     f"to have @compensate; `{x[2].name}` has none",
                            x[0].span, help=self._tx_help(x))
            return TxPlan("invalid", "written `transaction saga`, but "
                          + ", ".join(f"`{x[2].name}`" for x in uncompensated)
                          + " cannot be undone (no @compensate) and is not the last write step",
                          None, write_calls)
        if can_2pc:
            names = ", ".join(f"`{x[2].name}`" for x in writes)
            return TxPlan("2pc", f"every write step ({names}) is @transactional", None,
                          write_calls)
        if not writes:
            return TxPlan("saga", "no write steps: nothing to undo", None, write_calls)
        if not_tx:
            x = not_tx[0]
            why = (f"`{x[2].name}` is not @transactional" if x[3] == "node"
                   else f"it calls workflow `{x[2].name}`")
        else:
            why = f"it contains {blockers[0][1]}"
        if can_saga:
            return TxPlan("saga", why + pivot_note(), pivot[1] if pivot else None,
                          write_calls)
        last = writes[-1]
        for x in uncompensated:
            if x is last:  # the last write step, but inside a loop
                self.report("E0401", f"transaction cannot be made atomic: `{x[2].name}` is a "
                                     "write step with no @compensate that runs in a loop, so "
                                     "it cannot be the pivot", x[0].span,
                            help=f"add `@compensate(<undo node>)` to node `{x[2].name}`, "
                                 "make it `@transactional`, or move it out of the loop")
                continue
            self.report("E0401", f"transaction cannot be made atomic: `{x[2].name}` is a write "
                                 f"step with no @compensate, and not the last write step",
                        x[0].span, help=self._tx_help(x, last))
        return TxPlan("invalid", f"cannot be made atomic: {why}, and "
                                 + ", ".join(f"`{x[2].name}` (line {x[0].span.line})"
                                             for x in uncompensated)
                                 + " cannot be undone", None, write_calls)

    @staticmethod
    def _tx_help(x, last=None) -> str:
        name = x[2].name
        if x[3] == "workflow":
            return (f"a workflow call cannot be undone; move `{name}(...)` after the block's "
                    "other write steps, or out of the transaction")
        tail = (f" (now `{last[2].name}` at line {last[0].span.line})"
                if last is not None and last is not x else "")
        return (f"add `@compensate(<undo node>)` to node `{name}`, make it "
                f"`@transactional`, or move it to be the block's last write step{tail}")
