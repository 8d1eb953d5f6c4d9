"""IR → bytecode: one code object per workflow, plus the runtime node table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..grammar import ast as A
from . import bytecode as B
from . import types as T
from .exprs import ExprCode, ExprCompiler
from .effects import node_effects
from .ir import IR, IRNode, Region
from .program import NodeInfo, ParamInfo, Program, WorkflowInfo


class _WorkflowGen:
    def __init__(self, ir: IR, info: WorkflowInfo) -> None:
        self.ir = ir
        self.program = ir.program
        self.info = info
        self.slots: dict[Any, int] = {}
        self.slot_names: list[str] = ["<frame>"]
        self.keys: set[str] = set()
        self.waits: dict[str, T.Type] = {}
        self.nparams = len(info.params)

    def slot_of(self, obj: Any) -> int:
        s = self.slots.get(obj)
        if s is None:
            s = self.slots[obj] = len(self.slot_names)
            self.slot_names.append(getattr(obj, "name", None) or getattr(obj, "key", "?"))
        return s

    def expr(self, e: Any, site: str, hoisted: dict | None = None) -> ExprCode:
        hmap = {call: self.slot_of(n) for call, n in (hoisted or {}).items()}
        return ExprCompiler(self.program, self.slot_of, hmap, site, self.ir.rewrites).compile(e)

    def await_reads(self, code: B.Code, ec: ExprCode, n: Any) -> None:
        """Make the stream's wait visible: `AWAIT` the slots an expression reads that a
        step (or a deferred value) may still be filling; parameters are always ready."""
        pending = sorted(s for s in ec.reads if s > self.nparams)
        if pending:
            self.emit(code, B.Op.AWAIT, pending, n)

    # ------------------------------------------------------------------------
    def code(self, region: Region, name: str, kind: str, prefix: str = "") -> B.Code:
        code = B.Code(name, [], kind)
        for n in region.nodes:
            if n.dead:
                continue
            self.node(code, n, prefix)
        return code

    def emit(self, code: B.Code, op: B.Op, arg: Any, n: IRNode | Any) -> B.Instr:
        span = n.stmt.span if isinstance(n, IRNode) else n.span
        ins = B.Instr(op, arg, span.line, span.column)
        code.instrs.append(ins)
        return ins

    def step_spec(self, n: IRNode, prefix: str, call: A.Call, target: Any, key: str,
                  hoisted: dict) -> B.StepSpec:
        args = [(a.name, self.expr(a.value, key, hoisted)) for a in call.args if a.name]
        reads = frozenset().union(*(c.reads for _, c in args)) if args else frozenset()
        kind = "workflow" if isinstance(target, WorkflowInfo) else "node"
        self.keys.add(prefix + key)
        return B.StepSpec(
            slot=0, key=key, kind=kind, target=target.qualname, label=target.name,
            args=args, reads=reads, effects=node_effects(target), line=call.span.line,
            flush_before=n.flush_before,
        )

    def node(self, code: B.Code, n: IRNode, prefix: str) -> None:
        s = n.stmt
        if n.kind == "step":
            policy = self.program.stmt_policy.get(s)
            if isinstance(s, A.Let):
                value = s.value
                when = s.when
            elif isinstance(s, A.ExprStmt):
                value, when = s.expr, s.when
            else:  # a hoisted call
                value, when = s, None
            primary = value.primary if isinstance(value, A.TryElse) else value
            spec = self.step_spec(n, prefix, primary, n.target, n.key, n.hoisted)
            spec.slot = self.slot_of(n.binds if n.binds is not None else n)
            if when is not None:
                spec.when = self.expr(when, n.key, n.hoisted)
                spec.reads = spec.reads | spec.when.reads
            if isinstance(value, A.TryElse):
                ftarget = self.program.calls[value.fallback].target
                fb = self.step_spec(n, prefix, value.fallback, ftarget, n.key + ".else",
                                    n.hoisted)
                fb.slot = spec.slot
                spec.fallback = fb
                spec.reads = spec.reads | fb.reads
                spec.effects = spec.effects | fb.effects
            if policy is not None:
                spec.retry = policy.retry
                spec.timeout_ms = policy.timeout_ms
            self.emit(code, B.Op.STEP, spec, n)
            return
        if n.kind == "value":
            value = s.value if isinstance(s, A.Let) else s.expr
            ec = self.expr(value, n.key, n.hoisted)
            slot = self.slot_of(n.binds) if n.binds is not None else None
            self.emit(code, B.Op.LET, (slot, ec), n)
            return
        if n.kind == "if":
            self.emit(code, B.Op.BARRIER, "effects", n)
            jumps_to_end = []
            for i, (cond, _block) in enumerate(s.branches):
                ec = self.expr(cond, f"{n.key}.cond{i}", n.hoisted)
                self.await_reads(code, ec, cond)
                jmp = self.emit(code, B.Op.JUMP_IF_NOT, [ec, -1], cond)
                sub = n.regions[i]
                for m in sub.nodes:
                    if not m.dead:
                        self.node(code, m, prefix)
                j = B.Instr(B.Op.JUMP, -1, cond.span.line, cond.span.column)
                code.instrs.append(j)
                jumps_to_end.append(j)
                jmp.arg[1] = len(code.instrs)
            if s.orelse is not None:
                for m in n.regions[-1].nodes:
                    if not m.dead:
                        self.node(code, m, prefix)
            end = len(code.instrs)
            for j in jumps_to_end:
                j.arg = end
            # effects started in a branch finish before any later effect starts
            self.emit(code, B.Op.BARRIER, "effects", n)
            return
        if n.kind == "for":
            f = s.value if isinstance(s, A.Let) else s
            policy = self.program.stmt_policy.get(s) or self.program.stmt_policy.get(f)
            var_binding = self.program.bindings.get(f)
            var_slot = self.slot_of(var_binding if var_binding is not None else ("loopvar", f))
            body = self.code(n.regions[0], f"{n.key}[]", "loop", prefix + n.key + "[*].")
            yields = any(isinstance(x, A.Yield) for x in A.walk(f.body))
            spec = B.ForSpec(
                slot=self.slot_of(n.binds) if n.binds is not None else None,
                var_slot=var_slot, iterable=self.expr(f.iterable, n.key, n.hoisted),
                body=body, concurrency=(policy.concurrency if policy and policy.concurrency
                                        else 1),
                key=n.key, yields=yields)
            self.emit(code, B.Op.BARRIER, "effects", n)
            self.await_reads(code, spec.iterable, n)
            self.emit(code, B.Op.FOR, spec, n)
            return
        if n.kind == "parallel":
            body = self.code(n.regions[0], n.key, "parallel", prefix)
            self.emit(code, B.Op.PARALLEL, body, n)
            return
        if n.kind == "tx":
            plan = self.program.transactions.get(s)
            pattern = plan.pattern if plan else "saga"
            reason = plan.reason if plan else ""
            body = self.code(n.regions[0], n.key, "tx", prefix)
            self.emit(code, B.Op.BARRIER, "effects", n)
            self.emit(code, B.Op.TX, B.TxSpec(pattern, reason, body, n.key, s.span.line), n)
            return
        if n.kind == "try":
            body = self.code(n.regions[0], n.key, "try", prefix)
            handlers = []
            for c, region in zip(s.catches, n.regions[1:]):
                b = self.program.bindings.get(c)
                slot = self.slot_of(b) if b is not None else None
                handlers.append(B.Handler(tuple(k for k, _ in c.kinds), slot,
                                          self.code(region, n.key + ".catch", "handler",
                                                    prefix)))
            self.emit(code, B.Op.BARRIER, "effects", n)
            self.emit(code, B.Op.TRY, B.TrySpec(body, handlers), n)
            return
        if n.kind == "sleep":
            self.emit(code, B.Op.BARRIER, "all", n)
            self.keys.add(prefix + n.key)
            self.emit(code, B.Op.SLEEP, (self.expr(s.duration, n.key, n.hoisted), n.key), n)
            return
        if n.kind == "wait":
            w = s.value if isinstance(s, A.Let) else s.expr
            ptype = self.program.waits.get(w, T.JSON)
            self.waits[w.signal] = ptype
            timeout = self.expr(w.timeout, n.key) if w.timeout is not None else None
            slot = self.slot_of(n.binds) if n.binds is not None else None
            self.emit(code, B.Op.BARRIER, "all", n)
            self.keys.add(prefix + n.key)
            self.emit(code, B.Op.WAIT, (slot, w.signal, timeout, n.key, ptype), n)
            return
        if n.kind == "emit":
            value = self.expr(s.value, n.key, n.hoisted) if s.value is not None else None
            self.emit(code, B.Op.BARRIER, "all", n)
            if value is not None:
                self.await_reads(code, value, n)
            self.emit(code, B.Op.EMIT, (s.name, value, n.key), n)
            return
        if n.kind == "checkpoint":
            self.emit(code, B.Op.FLUSH, "checkpoint", n)
            return
        if n.kind == "return":
            value = self.expr(s.value, n.key, n.hoisted) if s.value is not None else None
            self.emit(code, B.Op.BARRIER, "all", n)
            if value is not None:
                self.await_reads(code, value, n)
            self.emit(code, B.Op.RETURN, value, n)
            return
        if n.kind == "fail":
            self.emit(code, B.Op.BARRIER, "all", n)
            self.emit(code, B.Op.FAIL, (s.kind or "Failed", self.expr(s.message, n.key,
                                                                       n.hoisted)), n)
            return
        if n.kind == "yield":
            ec = self.expr(s.value, n.key, n.hoisted)
            self.await_reads(code, ec, n)
            self.emit(code, B.Op.YIELD, ec, n)
            return
        raise NotImplementedError(n.kind)


def _params(program: Program, params: list[ParamInfo]) -> list[B.RuntimeParam]:
    out = []
    for p in params:
        default = None
        if p.default is not None:
            default = ExprCompiler(program, lambda b: 0).compile(p.default)
        out.append(B.RuntimeParam(p.name, p.type, default, p.has_default))
    return out


def _runtime_node(program: Program, n: NodeInfo) -> B.RuntimeNode:
    return B.RuntimeNode(
        qualname=n.qualname, name=n.name, impl=n.impl, effect=n.effect, resource=n.resource,
        params=_params(program, n.params), result=n.result, retry=n.retry,
        timeout_ms=n.timeout_ms, idempotent=n.idempotent, transactional=n.transactional,
        compensate=n.compensate.qualname if n.compensate is not None else None,
        circuit_breaker=n.circuit_breaker, bulkhead=n.bulkhead,
        line=n.decl.span.line, file=n.decl.span.file,
    )


def generate(ir: IR) -> B.CompiledProgram:
    program = ir.program
    workflows: dict[str, B.RuntimeWorkflow] = {}
    nodes: dict[str, B.RuntimeNode] = {}
    for mod in program.modules.values():
        for sym in mod.scope.values():
            if isinstance(sym, NodeInfo) and sym.qualname not in nodes:
                nodes[sym.qualname] = _runtime_node(program, sym)
                if sym.compensate is not None and sym.compensate.qualname not in nodes:
                    nodes[sym.compensate.qualname] = _runtime_node(program, sym.compensate)
    param_bindings: dict[Any, Any] = {}
    for ref in program.names.values():
        if ref.kind == "local" and getattr(ref.target, "kind", "") == "param":
            param_bindings[ref.target.node] = ref.target
    for key, b in program.bindings.items():
        if getattr(b, "kind", "") == "param":
            param_bindings[b.node if b.node is not None else key] = b
    for q, irw in ir.workflows.items():
        info = irw.info
        for n in info.reachable_nodes:
            if n.qualname not in nodes:
                nodes[n.qualname] = _runtime_node(program, n)
        gen = _WorkflowGen(ir, info)
        params = _params(program, info.params)
        for p in info.params:
            binding = param_bindings.get(p.decl)
            gen.slot_of(binding if binding is not None else ("param", p.decl))
        code = gen.code(irw.body, info.name, "workflow")
        effects = frozenset((n.effect, n.resource) for n in info.reachable_nodes
                            if n.effect != "pure")
        workflows[q] = B.RuntimeWorkflow(
            qualname=q, name=info.name, params=params, result=info.result, code=code,
            nslots=len(gen.slot_names), slot_names=gen.slot_names, effects=effects,
            file=info.decl.span.file, line=info.decl.span.line, doc=info.doc,
            step_keys=frozenset(gen.keys), waits=gen.waits)
    entry = [w.qualname for w in program.workflows(program.entry)]
    dirs = []
    for mod in program.modules.values():
        if not mod.is_std:
            d = str(Path(mod.path).resolve().parent)
            if d not in dirs:
                dirs.append(d)
    prog = B.CompiledProgram(
        path=str(Path(program.entry.path).resolve()), module_dirs=dirs,
        entry_workflows=entry, workflows=workflows, nodes=nodes, sources={},
        explanations=[text for _, text in program.explanations])
    return prog
