"""The checker: modules in, a :class:`Program` out (names, calls, types, plans resolved).

Phases, over every module loaded for a check (the entry files and their imports):

1. **declare** each module's imports and declarations into its scope (E0103);
2. **resolve** type declarations, constants (folded to values; E0302 for a cycle) and
   node/workflow signatures, lazily, so declarations may come in any order and refer
   across modules;
3. **attributes** of nodes and workflows (``attributes.py``), then the ``@compensate``
   checks (E0402);
4. **bodies** of workflows (``check_stmt.py`` / ``check_expr.py``);
5. **reachability** of nodes from each workflow, then each ``transaction``'s plan
   (``transactions.py``).

Problems are collected, never raised; after one the offending expression gets the type
``UNKNOWN`` so it does not cascade. The mixins share state through ``self``: the current
module (``mod``), the local scope (``scope``, None at module level), the workflow being
checked (``wf``) and the Program's side tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from typing import Any

from ..diagnostics import Diagnostic, Label, did_you_mean
from ..grammar import ast as A
from . import types as T
from .attributes import AttributeChecker
from .check_expr import ExprChecker, exported, exported_names
from .check_stmt import StmtChecker
from .consteval import NotConstant, evaluate
from .loader import Loader, empty_module
from .program import (
    Binding,
    ConstInfo,
    EnumInfo,
    ModuleInfo,
    NodeInfo,
    ParamInfo,
    Program,
    TypeInfo,
    WorkflowInfo,
)
from .transactions import TransactionPlanner

_GENERICS = ("list", "map")


class Scope:
    """A block's local names; ``narrow`` holds null-checked names: {name: (binding, T)}."""

    __slots__ = ("narrow", "parent", "vars")

    def __init__(self, parent: Scope | None = None) -> None:
        self.vars: dict[str, Binding] = {}
        self.narrow: dict[str, tuple[Binding, T.Type]] = {}
        self.parent = parent

    def declare(self, b: Binding) -> None:
        self.vars[b.name] = b

    def lookup(self, name: str) -> tuple[Binding, T.Type] | None:
        s: Scope | None = self
        narrowed = None
        while s is not None:
            if narrowed is None:
                narrowed = s.narrow.get(name)
            b = s.vars.get(name)
            if b is not None:
                if narrowed is not None and narrowed[0] is b:
                    return b, narrowed[1]
                return b, b.type
            s = s.parent
        return None

    def visible_names(self):
        s: Scope | None = self
        seen: set[str] = set()
        while s is not None:
            for n in s.vars:
                if n not in seen:
                    seen.add(n)
                    yield n
            s = s.parent


class Checker(ExprChecker, StmtChecker, AttributeChecker, TransactionPlanner):
    def __init__(self, loader: Loader) -> None:
        self.loader = loader
        self.diagnostics: list[Diagnostic] = []
        # Program side tables (shared by every module of this check)
        self.types: dict[Any, T.Type] = {}
        self.calls: dict = {}
        self.names: dict = {}
        self.bindings: dict = {}
        self.transactions: dict = {}
        self.waits: dict = {}
        self.stmt_policy: dict = {}
        self.explanations: list[tuple[A.Span, str]] = []
        # current position
        self.mod: ModuleInfo | None = None
        self.scope: Scope | None = None
        self.wf: WorkflowInfo | None = None
        self.for_stack: list = []
        self.step_calls: list = []
        self.when_bindings: set[int] = set()
        self.lets: list[Binding] = []
        self.lazy_depth = 0
        self.const_ctx: str | None = None
        self._mismatch_code: list[str] = []
        self._quiet: list[list[Diagnostic]] = []
        self.error_count = 0
        # resolution state
        self._state: dict[int, str] = {}
        self._const_stack: list[ConstInfo] = []
        self._const_ok: set[int] = set()
        self._pending_compensations: list = []
        self.tx_sites: list = []
        self.wf_calls: dict[int, list] = {}
        self.checked: set[str] = set()

    # -- reporting ---------------------------------------------------------------------
    def report(self, code: str, message: str, span: A.Span, help: str | None = None,
               severity: str = "error", labels: tuple[Label, ...] = ()) -> None:
        d = Diagnostic(code, message, span, severity, help, labels)
        if self._quiet:
            self._quiet[-1].append(d)
            return
        if severity == "error":
            self.error_count += 1
        self.diagnostics.append(d)

    @contextmanager
    def quiet(self):
        """Collect (instead of report) the diagnostics of the body."""
        box: list[Diagnostic] = []
        self._quiet.append(box)
        try:
            yield box
        finally:
            self._quiet.pop()

    # -- context -------------------------------------------------------------------------
    @contextmanager
    def in_module(self, mod: ModuleInfo):
        saved = (self.mod, self.scope, self.const_ctx, self.lazy_depth, self._mismatch_code)
        self.mod, self.scope, self.const_ctx, self.lazy_depth = mod, None, None, 0
        self._mismatch_code = []
        try:
            yield
        finally:
            (self.mod, self.scope, self.const_ctx, self.lazy_depth,
             self._mismatch_code) = saved

    @contextmanager
    def const_context(self, what: str):
        saved = (self.const_ctx, self.scope)
        self.const_ctx, self.scope = what, None
        try:
            yield
        finally:
            self.const_ctx, self.scope = saved

    @contextmanager
    def lazy(self):
        self.lazy_depth += 1
        try:
            yield
        finally:
            self.lazy_depth -= 1

    @contextmanager
    def root_scope(self):
        saved = self.scope
        self.scope = Scope(None)
        try:
            yield self.scope
        finally:
            self.scope = saved

    @contextmanager
    def child_scope(self):
        saved = self.scope
        self.scope = Scope(saved)
        try:
            yield self.scope
        finally:
            self.scope = saved

    @contextmanager
    def narrowed(self, facts: dict):
        if not facts or self.scope is None:
            yield
            return
        with self.child_scope() as s:
            s.narrow.update(facts)
            yield

    def declare(self, b: Binding) -> None:
        prev = self.scope.vars.get(b.name)
        if prev is not None and b.name != "_":
            what = "a parameter" if prev.kind == "param" else "already defined"
            self.report("E0103", f"`{b.name}` is {what} in this scope", b.span,
                        labels=(Label(prev.span, f"`{b.name}` first defined here"),),
                        help=f"pick another name, or reuse `{b.name}`")
        self.scope.declare(b)

    # -- driver ---------------------------------------------------------------------------
    def check_modules(self, modules: list[ModuleInfo]) -> None:
        new = [m for m in modules if m.path not in self.checked]
        self.checked.update(m.path for m in new)
        for m in new:
            self.declare_module(m)
        for m in new:
            self.resolve_declarations(m)
        for m in new:
            self.decl_attributes(m)
        pending, self._pending_compensations = self._pending_compensations, []
        for info, attr in pending:
            with self.in_module(info.module):
                self.check_compensation(info, attr)
        workflows = [s for m in new for s in m.scope.values()
                     if isinstance(s, WorkflowInfo) and s.module is m]
        for wf in workflows:
            with self.in_module(wf.module):
                self.signature(wf)
                self.check_workflow_body(wf)
                self.wf_calls[id(wf)] = self.step_calls
                self.step_calls = []
        for wf in workflows:
            wf.reachable_nodes = self.reachable_nodes(wf)
        sites, self.tx_sites = self.tx_sites, []
        for tx, mod, wf in sites:
            with self.in_module(mod):
                plan = self.plan_transaction(tx)
            self.transactions[tx] = plan
            text = (f"transaction at {tx.span.line}:{tx.span.column}: "
                    f"{plan.pattern} — {plan.reason}")
            self.explanations.append((tx.span, text))

    # -- phase 1: declarations ---------------------------------------------------------------
    def declare_module(self, m: ModuleInfo) -> None:
        first: dict[str, A.Span] = {}
        with self.in_module(m):
            for imp, target in m.imported:
                name = imp.local_name
                if name in first:
                    self.report("E0103", f"`{name}` is imported twice", imp.span,
                                labels=(Label(first[name], "first imported here"),),
                                help="give one of them another name: `import ... as other`")
                    continue
                first[name] = imp.span
                if target is None:  # unknown import (E0104): names through it stay quiet
                    target = ModuleInfo(path=f"<unresolved {imp.target}>", name=imp.target,
                                        ast=empty_module(m.ast.path, imp.target))
                    target.parse_failed = True
                m.scope[name] = target
            for decl in m.ast.decls:
                name = decl.name
                if name in first:
                    self.report("E0103", f"`{name}` is defined twice", decl.name_span,
                                labels=(Label(first[name], f"`{name}` first defined here"),),
                                help="rename one of them")
                    continue
                first[name] = decl.name_span
                m.scope[name] = self._make_info(m, decl)

    def _make_info(self, m: ModuleInfo, decl) -> Any:
        qual = f"{m.name}.{decl.name}"
        if isinstance(decl, A.NodeDecl):
            return NodeInfo(decl, m, decl.name, qual, [], T.UNKNOWN, decl.doc, None)
        if isinstance(decl, A.WorkflowDecl):
            return WorkflowInfo(decl, m, decl.name, qual, [], T.UNKNOWN, decl.doc)
        if isinstance(decl, A.TypeDecl):
            return TypeInfo(decl, m, decl.name, T.UNKNOWN, decl.doc)
        if isinstance(decl, A.EnumDecl):
            members: list[str] = []
            spans: dict[str, A.Span] = {}
            for name, span in decl.members:
                if name in spans:
                    self.report("E0103", f"enum member `{name}` is listed twice", span,
                                labels=(Label(spans[name], "first listed here"),))
                    continue
                spans[name] = span
                members.append(name)
            if not members:
                self.report("E0201", f"enum `{decl.name}` has no members", decl.name_span,
                            help=f"list them: `enum {decl.name} {{ a, b }}`")
            return EnumInfo(decl, m, decl.name, T.EnumT(decl.name, tuple(members), qual),
                            decl.doc)
        assert isinstance(decl, A.Const)
        return ConstInfo(decl, m, decl.name, T.UNKNOWN, None)

    # -- phase 2: types, constants, signatures ------------------------------------------------
    def resolve_declarations(self, m: ModuleInfo) -> None:
        with self.in_module(m):
            for sym in list(m.scope.values()):
                if getattr(sym, "module", None) is not m:
                    continue
                if isinstance(sym, TypeInfo):
                    self.resolve_typeinfo(sym)
                elif isinstance(sym, ConstInfo):
                    self.resolve_const(sym)
                elif isinstance(sym, (NodeInfo, WorkflowInfo)):
                    self.signature(sym)

    def resolve_typeinfo(self, info: TypeInfo, ref: A.Span | None = None) -> T.Type:
        state = self._state.get(id(info))
        if state == "done":
            return info.type
        if state == "busy":
            self.report("E0302", f"type `{info.name}` is defined in terms of itself",
                        ref or info.decl.name_span,
                        help="recursive types are not supported; use `json` for the "
                             "recursive part")
            return T.UNKNOWN
        self._state[id(info)] = "busy"
        decl = info.decl
        with self.in_module(info.module):
            if decl.fields is not None:
                t: T.Type = T.RecordT(self.record_fields(decl.fields), info.name)
            else:
                t = self.resolve_type(decl.alias)
        info.type = t
        self._state[id(info)] = "done"
        return t

    def record_fields(self, fields) -> tuple[T.FieldT, ...]:
        out = []
        for f in fields:
            ft = self.resolve_type(f.type)
            if f.default is None:
                out.append(T.FieldT(f.name, ft))
                continue
            value = self.default_value(f.default, ft, f"the default of `{f.name}`")
            out.append(T.FieldT(f.name, ft, True, value))
        return tuple(out)

    def default_value(self, e: A.Expr, t: T.Type, what: str) -> Any:
        before = self.error_count
        with self.const_context("a default value"):
            self.expect(e, t, what=what)
        if self.error_count != before:
            return None
        try:
            return coerce(t, self.const_value(e))
        except NotConstant as exc:
            self.report("E0201", f"{what} must be a constant: {exc.why}", exc.node.span)
            return None

    def resolve_type(self, te) -> T.Type:
        if isinstance(te, A.TypeOptional):
            inner = self.resolve_type(te.inner)
            return T.optional(inner)
        if isinstance(te, A.TypeRecord):
            return T.RecordT(self.record_fields(te.fields))
        if isinstance(te, A.TypeGeneric):
            if te.name not in _GENERICS:
                guess = did_you_mean(te.name, _GENERICS)
                self.report("E0102", f"unknown generic type `{te.name}[...]`", te.span,
                            help=f"did you mean `{guess}`?" if guess else
                            "the generic types are `list[T]` and `map[T]`")
                for a in te.args:
                    self.resolve_type(a)
                return T.UNKNOWN
            args = [self.resolve_type(a) for a in te.args]
            if len(args) != 1:
                help = ("map keys are always strings: write `map[V]`" if te.name == "map"
                        else "write `list[T]`")
                self.report("E0102", f"`{te.name}` takes one type argument, found {len(args)}",
                            te.span, help=help)
                return T.UNKNOWN
            return T.ListT(args[0]) if te.name == "list" else T.MapT(args[0])
        assert isinstance(te, A.TypeName)
        name = te.name
        if "." in name:
            head, _, rest = name.partition(".")
            other = self.mod.scope.get(head)
            if isinstance(other, ModuleInfo) and "." not in rest:
                if other.parse_failed:
                    return T.UNKNOWN
                sym = exported(other, rest)
                if isinstance(sym, TypeInfo):
                    return self.resolve_typeinfo(sym, te.span)
                if isinstance(sym, EnumInfo):
                    return sym.type
                guess = did_you_mean(rest, exported_names(other, (TypeInfo, EnumInfo)))
                self.report("E0102", f"module `{other.name}` has no type `{rest}`", te.span,
                            help=f"did you mean `{head}.{guess}`?" if guess else None)
                return T.UNKNOWN
            self.report("E0102", f"cannot find type `{name}`", te.span,
                        help=f"`{head}` is not an imported module" if other is None else None)
            return T.UNKNOWN
        sym = self.mod.scope.get(name)
        if isinstance(sym, TypeInfo):
            return self.resolve_typeinfo(sym, te.span)
        if isinstance(sym, EnumInfo):
            return sym.type
        prim = T.PRIMITIVES.get(name)
        if prim is not None:
            return prim
        if name == "Error":
            return T.ERROR_RECORD
        if sym is not None:
            from .check_expr import describe_symbol
            self.report("E0102", f"{describe_symbol(sym)} is not a type", te.span)
            return T.UNKNOWN
        if name in _GENERICS:
            self.report("E0102", f"`{name}` needs an item type: `{name}[T]`", te.span)
            return T.UNKNOWN
        cands = [n for n, s in self.mod.scope.items() if isinstance(s, (TypeInfo, EnumInfo))]
        cands += list(T.PRIMITIVES) + list(_GENERICS)
        guess = did_you_mean(name, cands)
        help = f"did you mean `{guess}`?" if guess else None
        if help is None:
            for alias, m in self.mod.scope.items():
                if isinstance(m, ModuleInfo) and isinstance(exported(m, name),
                                                            (TypeInfo, EnumInfo)):
                    help = f"`{name}` is declared in `{m.name}`; write `{alias}.{name}`"
                    break
        self.report("E0102", f"cannot find type `{name}`", te.span, help=help)
        return T.UNKNOWN

    def resolve_const(self, info: ConstInfo, ref: A.Expr | None = None) -> T.Type:
        state = self._state.get(id(info))
        if state == "done":
            return info.type
        if state == "busy":
            i = next((k for k, c in enumerate(self._const_stack) if c is info), 0)
            chain = [c.name for c in self._const_stack[i:]] + [info.name]
            self.report("E0302", f"constant `{info.name}` depends on itself: "
                                 + " → ".join(f"`{n}`" for n in chain),
                        ref.span if ref is not None else info.decl.name_span,
                        help="break the cycle: a constant cannot be computed from itself")
            self._state[id(info)] = "cycle"
            return T.UNKNOWN
        if state == "cycle":
            return T.UNKNOWN
        self._state[id(info)] = "busy"
        self._const_stack.append(info)
        decl = info.decl
        before = self.error_count
        try:
            with self.in_module(info.module), self.const_context("a constant"):
                if decl.type is not None:
                    ann = self.resolve_type(decl.type)
                    self.expect(decl.value, ann, what=f"constant `{info.name}`")
                    t = ann
                else:
                    t = self.expr(decl.value)
            info.type = t
            if self.error_count == before and self._state.get(id(info)) == "busy":
                try:
                    info.value = coerce(t, self.const_value(decl.value))
                    self._const_ok.add(id(info))
                except NotConstant as exc:
                    self.report("E0201", f"constant `{info.name}` must be computable before "
                                         f"the run: {exc.why}", exc.node.span,
                                help="constants use literals, other constants, enum members "
                                     "and deterministic builtins")
        finally:
            self._const_stack.pop()
            if self._state.get(id(info)) == "busy":
                self._state[id(info)] = "done"
        return info.type if self._state.get(id(info)) == "done" else T.UNKNOWN

    def const_value(self, e: A.Expr) -> Any:
        def resolve(x):
            ref = self.names.get(x)
            if ref is None:
                raise NotConstant(x, "not a constant")
            if ref.kind == "const":
                if id(ref.target) in self._const_ok:
                    return ref.target.value
                raise NotConstant(x, f"constant `{ref.target.name}` has no value")
            if ref.kind == "enum_member":
                return ref.target[1]
            what = {"local": "a local value"}.get(ref.kind, f"a {ref.kind}")
            raise NotConstant(x, f"`{getattr(x, 'id', getattr(x, 'name', '?'))}` is {what}")

        def call_name(c):
            t = self.calls.get(c)
            return t.target if t is not None and t.kind == "builtin" else None

        return evaluate(e, resolve, call_name)

    def signature(self, info):
        """Resolve a node's or workflow's parameters and result (once)."""
        if self._state.get(id(info)) is not None:
            return info
        self._state[id(info)] = "busy"
        decl = info.decl
        with self.in_module(info.module):
            params = []
            for p in decl.params:
                pt = self.resolve_type(p.type)
                if p.default is not None:
                    with self.const_context("a parameter default"):
                        self.expect(p.default, pt, what=f"the default of `{p.name}`")
                params.append(ParamInfo(p.name, pt, p, p.default is not None, p.default))
            result = self.resolve_type(decl.result) if decl.result is not None else T.NULL
        info.params = params
        info.result = result
        self._state[id(info)] = "done"
        return info

    # -- phase 3: attributes ------------------------------------------------------------------
    def decl_attributes(self, m: ModuleInfo) -> None:
        with self.in_module(m):
            for decl in m.ast.decls:
                sym = m.scope.get(decl.name)
                if sym is None or getattr(sym, "decl", None) is not decl:
                    continue
                if isinstance(sym, NodeInfo):
                    self.node_attributes(sym)
                    self.finish_node_attributes(sym)
                elif isinstance(sym, WorkflowInfo):
                    self.workflow_attributes(sym)
                elif isinstance(sym, TypeInfo):
                    self.no_decl_attributes(decl, "types")
                elif isinstance(sym, EnumInfo):
                    self.no_decl_attributes(decl, "enums")
                else:
                    self.no_decl_attributes(decl, "constants")

    # -- programs -------------------------------------------------------------------------------
    def program_for(self, entry: ModuleInfo) -> Program:
        mods = self.loader.reachable(entry)
        files = {m.ast.path for m in mods}
        diags: list[Diagnostic] = []
        for m in mods:
            diags.extend(self.loader.diagnostics.get(m.path, ()))
        diags.extend(self.loader.cycle_diagnostics(entry))
        diags.extend(self.loader.name_clash_diagnostics(entry))
        diags.extend(d for d in self.diagnostics if d.span.file in files)
        return Program(
            entry=entry,
            modules={m.path: m for m in mods},
            diagnostics=sort_unique(diags),
            types=self.types,
            calls=self.calls,
            names=self.names,
            bindings=self.bindings,
            transactions=self.transactions,
            waits=self.waits,
            stmt_policy=self.stmt_policy,
            explanations=sorted((x for x in self.explanations if x[0].file in files),
                                key=lambda x: (x[0].file, x[0].line, x[0].column)),
        )


def coerce(t: T.Type, value: Any) -> Any:
    """A folded constant as a runtime value of its declared type (``1`` → ``1.0`` for a
    float, record defaults filled); unchanged when it does not fit (already reported)."""
    try:
        return T.check_value(t, value)
    except (T.ValueMismatch, TypeError, ValueError):
        return value


def sort_unique(diags) -> list[Diagnostic]:
    seen: set = set()
    out = []
    for d in diags:
        key = (d.code, d.span, d.message)
        if key in seen:
            continue
        seen.add(key)
        out.append(d)
    out.sort(key=Diagnostic.sort_key)
    return out


def check_files(paths: list[str]) -> tuple[Checker, list[ModuleInfo]]:
    """Load and check ``paths`` (and their imports) together; each module once."""
    loader = Loader()
    entries = [loader.load(p) for p in paths]
    checker = Checker(loader)
    checker.check_modules(list(loader.modules.values()))
    return checker, entries


def check_source(text: str, path: str = "<string>.kflow",
                 overlay: Mapping[str, str] | None = None) -> Program:
    """Check source text as if it were the file ``path`` (imports resolve next to it).
    ``overlay`` maps absolute paths to texts read instead of those files."""
    loader = Loader(overlay)
    entry = loader.load_source(text, path)
    checker = Checker(loader)
    checker.check_modules(list(loader.modules.values()))
    return checker.program_for(entry)
