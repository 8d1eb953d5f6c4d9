"""The intermediate representation: each workflow as regions of statement graphs.

A :class:`Region` is one block (workflow body, branch, loop body, ``parallel``,
``transaction``, ``try``, handler). Its statements are nodes of a networkx ``DiGraph`` in
textual order, with ``data`` edges (a statement reads a binding another makes) and,
after the scheduling pass, ``effect`` edges (§6 conflicts). Passes rewrite the IR;
:mod:`codegen` turns it into bytecode and ``kflow graph`` draws it.

Nested step calls (``return {v: Double(n: 2)}``) are hoisted here into their own
anonymous steps, so every step is one IR node with a stable key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ..grammar import ast as A
from .effects import conflicts, node_effects  # noqa: F401 - re-exported
from .program import Binding, Program, WorkflowInfo


@dataclass(eq=False)
class IRNode:
    id: int
    kind: str  # step value if for parallel tx try sleep wait emit checkpoint return fail yield
    stmt: Any  # the AST statement (or the hoisted Call)
    key: str
    line: int
    binds: Binding | None = None
    reads: set = field(default_factory=set)  # Bindings read (free variables)
    effects: frozenset = frozenset()  # {(effect, resource)} of non-pure work
    call: A.Call | None = None  # for steps: the call
    target: Any = None  # NodeInfo | WorkflowInfo for steps
    regions: list["Region"] = field(default_factory=list)
    hoisted: dict = field(default_factory=dict)  # Call -> IRNode of the hoisted step
    flush_before: bool = False
    dead: bool = False
    note: str = ""

    @property
    def is_step(self) -> bool:
        return self.kind == "step"

    @property
    def nonpure(self) -> bool:
        return bool(self.effects)

    @property
    def writes(self) -> bool:
        return any(e == "write" for e, _ in self.effects)


@dataclass(eq=False)
class Region:
    kind: str  # workflow if else loop parallel tx try catch
    nodes: list[IRNode] = field(default_factory=list)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    stmt: Any = None


@dataclass(eq=False)
class IRWorkflow:
    info: WorkflowInfo
    body: Region


@dataclass(eq=False)
class IR:
    program: Program
    workflows: dict[str, IRWorkflow]
    #: expression rewrites made by passes (constant folding): old expr -> new expr
    rewrites: dict = field(default_factory=dict)
    #: passes that ran, in order
    applied: list[str] = field(default_factory=list)


class _Builder:
    def __init__(self, program: Program, wf: WorkflowInfo) -> None:
        self.program = program
        self.wf = wf
        self.counter = 0

    def new_id(self) -> int:
        self.counter += 1
        return self.counter

    def unique(self, scope: set[str], base: str) -> str:
        key = base
        n = 1
        while key in scope:
            n += 1
            key = f"{base}#{n}"
        scope.add(key)
        return key

    # -- analysis helpers ------------------------------------------------------
    def reads_of(self, node: Any) -> set:
        out = set()
        for sub in A.walk(node):
            if isinstance(sub, A.Name):
                ref = self.program.names.get(sub)
                if ref is not None and ref.kind == "local":
                    out.add(ref.target)
        return out

    def step_target(self, call: Any):
        if not isinstance(call, A.Call):
            return None
        t = self.program.calls.get(call)
        if t is not None and t.kind in ("node", "workflow"):
            return t.target
        return None

    def nested_calls(self, expr: Any, top: Any = ()) -> list[A.Call]:
        """Step calls inside an expression, innermost first, excluding those in ``top``."""
        if not isinstance(top, tuple):
            top = (top,)
        found: list[A.Call] = []

        def visit(e):
            if e is None or isinstance(e, (str, int, float, bool)):
                return
            if isinstance(e, (A.For, A.Block)):
                return
            if hasattr(e, "__dataclass_fields__") and not isinstance(e, A.Span):
                for fname in e.__dataclass_fields__:
                    if fname == "span" or fname.endswith("_span"):
                        continue
                    v = getattr(e, fname)
                    if isinstance(v, tuple):
                        for x in v:
                            visit(x)
                    else:
                        visit(v)
                if isinstance(e, A.Call) and not any(e is t for t in top) \
                        and self.step_target(e) is not None:
                    found.append(e)
            elif isinstance(e, tuple):
                for x in e:
                    visit(x)

        visit(expr)
        return found

    # -- building --------------------------------------------------------------
    def region(self, kind: str, block: A.Block | None, scope: set[str], stmt=None) -> Region:
        r = Region(kind, stmt=stmt)
        if block is not None:
            for s in block.stmts:
                self.stmt(r, s, scope)
        self.link(r)
        return r

    def link(self, r: Region) -> None:
        g = r.graph
        made: dict[Any, IRNode] = {}
        for n in r.nodes:
            g.add_node(n.id, ir=n)
            for b in n.reads:
                src = made.get(b)
                if src is not None:
                    g.add_edge(src.id, n.id, kind="data")
            if n.binds is not None:
                made[n.binds] = n

    def hoist(self, r: Region, owner_key: str, expr: Any, scope: set[str], top=()) -> dict:
        hoisted = {}
        for call in self.nested_calls(expr, top):
            target = self.step_target(call)
            key = self.unique(scope, f"{owner_key}.{target.name}")
            n = IRNode(self.new_id(), "step", call, key, call.span.line, None,
                       self.reads_of(call), node_effects(target), call, target)
            n.hoisted = {c: hoisted[c] for c in hoisted if _contains(call, c)}
            hoisted[call] = n
            r.nodes.append(n)
        return hoisted

    def stmt(self, r: Region, s: Any, scope: set[str]) -> None:
        p = self.program
        line = s.span.line
        if isinstance(s, A.Let):
            binding = p.bindings.get(s)
            value = s.value
            if isinstance(value, A.For):
                key = self.unique(scope, s.name)
                n = self.for_node(value, key, binding, scope)
                r.nodes.append(n)
                return
            if isinstance(value, A.Wait):
                key = self.unique(scope, s.name)
                n = IRNode(self.new_id(), "wait", s, key, line, binding,
                           self.reads_of(value), frozenset())
                r.nodes.append(n)
                return
            key = self.unique(scope, s.name)
            primary = value.primary if isinstance(value, A.TryElse) else value
            target = self.step_target(primary)
            if target is not None:
                tops = (primary, value.fallback) if isinstance(value, A.TryElse) else (primary,)
                hoisted = self.hoist(r, key, s, scope, top=tops)
                effects = node_effects(target)
                if isinstance(value, A.TryElse):
                    effects = effects | node_effects(self.step_target(value.fallback))
                n = IRNode(self.new_id(), "step", s, key, line, binding,
                           self.reads_of(s), effects, primary, target)
                n.hoisted = hoisted
                r.nodes.append(n)
                return
            hoisted = self.hoist(r, key, s, scope)
            n = IRNode(self.new_id(), "value", s, key, line, binding, self.reads_of(s))
            n.hoisted = hoisted
            r.nodes.append(n)
            return
        if isinstance(s, A.ExprStmt):
            expr = s.expr
            if isinstance(expr, A.Wait):
                key = self.unique(scope, "wait")
                r.nodes.append(IRNode(self.new_id(), "wait", s, key, line, None,
                                      self.reads_of(expr)))
                return
            target = self.step_target(expr)
            base = target.name if target is not None else "call"
            key = self.unique(scope, base)
            hoisted = self.hoist(r, key, s, scope, top=expr)
            if target is None:  # a builtin called for nothing: a value
                n = IRNode(self.new_id(), "value", s, key, line, None, self.reads_of(s))
            else:
                n = IRNode(self.new_id(), "step", s, key, line, None, self.reads_of(s),
                           node_effects(target), expr, target)
            n.hoisted = hoisted
            r.nodes.append(n)
            return
        if isinstance(s, A.If):
            key = self.unique(scope, "if")
            n = IRNode(self.new_id(), "if", s, key, line, None, self.reads_of(s))
            for i, (cond, block) in enumerate(s.branches):
                n.hoisted.update(self.hoist(r, f"{key}.cond{i}", cond, scope))
                n.regions.append(self.region("if", block, scope, stmt=block))
            if s.orelse is not None:
                n.regions.append(self.region("else", s.orelse, scope, stmt=s.orelse))
            n.effects = _union(n.regions)
            r.nodes.append(n)
            return
        if isinstance(s, A.For):
            key = self.unique(scope, s.var)
            r.nodes.append(self.for_node(s, key, None, scope))
            return
        block_kind = _BLOCKS.get(type(s))
        if block_kind is not None:  # parallel / transaction / try (+ its handlers)
            key = self.unique(scope, block_kind)
            n = IRNode(self.new_id(), block_kind, s, key, line, None, self.reads_of(s))
            n.regions.append(self.region(block_kind, s.body, scope, stmt=s))
            for c in getattr(s, "catches", ()):
                n.regions.append(self.region("catch", c.body, scope, stmt=c))
            n.effects = _union(n.regions)
            r.nodes.append(n)
            return
        kinds = {A.Sleep: "sleep", A.Emit: "emit", A.Checkpoint: "checkpoint",
                 A.Return: "return", A.Fail: "fail", A.Yield: "yield"}
        kind = kinds.get(type(s))
        if kind is None:
            raise NotImplementedError(f"statement {type(s).__name__}")
        key = self.unique(scope, kind)
        n = IRNode(self.new_id(), kind, s, key, line, None, self.reads_of(s))
        n.hoisted = self.hoist(r, key, s, scope)
        r.nodes.append(n)

    def for_node(self, f: A.For, key: str, binding, scope: set[str]) -> IRNode:
        n = IRNode(self.new_id(), "for", f, key, f.span.line, binding, self.reads_of(f))
        # the body has its own key scope: keys there are prefixed `key[i].`
        n.regions.append(self.region("loop", f.body, set(), stmt=f))
        n.effects = _union(n.regions)
        return n


_BLOCKS = {A.Parallel: "parallel", A.Transaction: "tx", A.Try: "try"}


def _union(regions: list[Region]) -> frozenset:
    out: set = set()
    for r in regions:
        for n in r.nodes:
            out |= n.effects
    return frozenset(out)


def _contains(outer: Any, inner: Any) -> bool:
    return any(x is inner for x in A.walk(outer)) and outer is not inner


def build_ir(program: Program) -> IR:
    """Lower every workflow of the program (entry file and imports) to IR."""
    wfs: dict[str, IRWorkflow] = {}
    for mod in program.modules.values():
        for sym in mod.scope.values():
            if isinstance(sym, WorkflowInfo) and sym.module is mod and sym.qualname not in wfs:
                b = _Builder(program, sym)
                scope: set[str] = set()
                body = b.region("workflow", sym.decl.body, scope, stmt=sym.decl)
                wfs[sym.qualname] = IRWorkflow(sym, body)
    return IR(program, wfs)


def iter_nodes(region: Region):
    """Every IR node in a region and its sub-regions, in textual order."""
    for n in region.nodes:
        yield n
        for sub in n.regions:
            yield from iter_nodes(sub)
