"""Checking workflow bodies: statements, scopes and control flow (§5).

Scoping: parameters and the top-level statements share the workflow's scope; a `let` is
visible after it in its block and nested blocks; `if`/`for`/`try`/`catch` bodies are
scopes of their own; `parallel { }` and `transaction { }` are *not* (their bindings stay
visible after the block). A binding shadows module declarations and builtins.

Flow: a statement *ends the path* when it is `return`/`fail`, or an `if` with an `else`
whose every branch ends, or a `try` whose body and every handler end, or a `parallel`/
`transaction` block that ends. Statements after one are unreachable (W0002); a workflow
with a result type whose body can fall off the end gets E0501.
"""

from __future__ import annotations

from ..grammar import ast as A
from . import types as T
from .program import Binding


class StmtChecker:
    """Mixin: statements. See :class:`kailash_dsl.compiler.checker.Checker`."""

    # -- workflows ------------------------------------------------------------------
    def check_workflow_body(self, wf) -> None:
        decl = wf.decl
        self.wf = wf
        self.for_stack = []
        self.step_calls = []
        self.when_bindings = set()
        self.lets: list[Binding] = []
        self.transactions_seen = []
        with self.root_scope() as scope:
            for p in wf.params:
                b = Binding(p.name, p.type, "param", p.decl.name_span, p.decl, used=True)
                scope.declare(b)
                self.bindings[p.decl] = b
            ends = self.block(decl.body, new_scope=False)
        if decl.result is not None and wf.result != T.NULL and not ends:
            self.report("E0501", f"workflow `{wf.name}` can reach its end without returning "
                                 f"its result (`{wf.result.show()}`)",
                        decl.name_span,
                        help="every path must end with `return <value>` or `fail \"...\"`; "
                             "an `if` without `else` can fall through")
        for b in self.lets:
            if not b.used and not b.name.startswith("_") and not isinstance(b.type, T.Unknown):
                stmt = b.node
                is_step = isinstance(stmt, A.Let) and stmt.value in self.calls \
                    and self.calls[stmt.value].kind != "builtin"
                help = (f"if the step runs only for its effect, call it without `let`; "
                        f"or name it `_{b.name}`" if is_step else
                        f"remove it, or name it `_{b.name}` to keep it")
                self.report("W0001", f"unused binding `{b.name}`", b.span, severity="warning",
                            help=help)
        self.wf = None

    # -- blocks -------------------------------------------------------------------------
    def block(self, block: A.Block, new_scope: bool = True) -> bool:
        """Check a block; True when every path through it ends (return/fail)."""
        if new_scope:
            with self.child_scope():
                return self._stmts(block.stmts)
        return self._stmts(block.stmts)

    def _stmts(self, stmts) -> bool:
        ended = False
        warned = False
        for stmt in stmts:
            if ended and not warned:
                warned = True
                self.report("W0002", "unreachable statement", stmt.span, severity="warning",
                            help="it comes after a `return` or `fail` on every path")
            if self.stmt(stmt):
                ended = True
        return ended

    def stmt(self, s) -> bool:
        method = getattr(self, "s_" + type(s).__name__)
        return bool(method(s))

    # -- let / expression statements ---------------------------------------------------------
    def s_Let(self, s: A.Let) -> bool:
        ann = self.resolve_type(s.type) if s.type is not None else None
        if s.when is not None:
            self.expect(s.when, T.BOOL, what="`when` condition")
        value = s.value
        if isinstance(value, A.Wait):
            t = self.let_wait(s, value, ann)
        elif isinstance(value, A.For):
            t = self.check_for(value, as_value=True)
            if ann is not None:
                t = self._annotated(s, value, t, ann)
        else:
            exp = ann
            if ann is not None and s.when is not None:
                exp = T.strip_optional(ann)
            t = self.expr(value, exp)
            if exp == T.JSON:
                self.swallow(value, t)
            if s.when is not None:
                t = T.optional(t) if not isinstance(t, T.Unknown) else t
            if ann is not None:
                t = self._annotated(s, value, t, ann)
        self.stmt_attrs(s, value)
        b = Binding(s.name, t, "let", s.name_span, s)
        self.declare(b)
        self.bindings[s] = b
        self.lets.append(b)
        if s.when is not None:
            self.when_bindings.add(id(b))
        return False

    def _annotated(self, s: A.Let, value, t: T.Type, ann: T.Type) -> T.Type:
        if not T.assignable(t, ann):
            from .check_expr import mismatch_help, q
            if s.when is not None and T.assignable(T.strip_optional(t), ann):
                self.report("E0201", f"a `when`-guarded value may be null: expected {q(ann)}, "
                                     f"found {q(t)}", s.type.span,
                            help=f"annotate it `{ann.show()}?`")
            else:
                self.report("E0201", f"expected {q(ann)}, found {q(t)}", value.span,
                            help=mismatch_help(ann, t))
        return ann

    def let_wait(self, s: A.Let, w: A.Wait, ann: T.Type | None) -> T.Type:
        if w.timeout is not None:
            self.expect(w.timeout, T.DURATION, what="wait timeout")
        if ann is None:
            payload, t = T.JSON, T.JSON
        elif isinstance(ann, T.Optional):
            payload, t = ann.inner, ann
        elif ann == T.JSON or ann == T.NULL or isinstance(ann, T.Unknown):
            payload, t = ann, ann
        else:
            payload, t = ann, ann
            if w.timeout is not None:
                self.report("E0201", f"`wait ... timeout` gives null when it times out: "
                                     f"expected `{T.Optional(ann).show()}`, the annotation says "
                                     f"`{ann.show()}`", s.type.span,
                            help=f"annotate it `{ann.show()}?`")
        self.waits[w] = payload
        self.types[w] = t
        return t

    def s_ExprStmt(self, s: A.ExprStmt) -> bool:
        if s.when is not None:
            self.expect(s.when, T.BOOL, what="`when` condition")
        self.expr(s.expr)
        self.stmt_attrs(s, s.expr)
        return False

    # -- statement attributes -------------------------------------------------------------
    def stmt_attrs(self, s, value) -> None:
        if not s.attrs:
            return
        is_step = (isinstance(value, A.Call) and value in self.calls
                   and self.calls[value].kind in ("node", "workflow")) or (
            isinstance(value, A.TryElse))
        is_for = isinstance(value, A.For)
        policy = self.statement_policy(s.attrs, is_step=is_step, is_for=is_for)
        if policy is not None:
            self.stmt_policy[s] = policy
            if is_for:
                self.stmt_policy[value] = policy

    # -- control flow -----------------------------------------------------------------------
    def s_If(self, s: A.If) -> bool:
        all_end = True
        prior_false: dict = {}
        branch_ends = []
        for cond, body in s.branches:
            with self.narrowed(prior_false):
                self.expect(cond, T.BOOL, what="condition")
                when_true, when_false = self.null_facts(cond)
                with self.narrowed(when_true):
                    ends = self.block(body)
            branch_ends.append(ends)
            all_end = all_end and ends
            prior_false = {**prior_false, **when_false}
        if s.orelse is not None:
            with self.narrowed(prior_false):
                ends = self.block(s.orelse)
            all_end = all_end and ends
            return all_end
        if all(branch_ends) and prior_false:
            # `if x == null { return ... }`: below the `if`, x is not null
            self.scope.narrow.update(prior_false)
        return False

    def check_for(self, f: A.For, as_value: bool) -> T.Type:
        elem = self.iter_elem(f.iterable)
        frame = {"as_value": as_value, "yields": [], "for": f}
        self.for_stack.append(frame)
        with self.child_scope() as scope:
            b = Binding(f.var, elem, "loop", f.var_span, f, used=True)
            scope.declare(b)
            self.bindings[f] = b
            self.block(f.body, new_scope=False)
        self.for_stack.pop()
        if not as_value:
            if f.attrs:
                policy = self.statement_policy(f.attrs, is_step=False, is_for=True)
                if policy is not None:
                    self.stmt_policy[f] = policy
            return T.NULL
        if not frame["yields"]:
            self.report("E0208", "this `for` is used as a value but never yields", f.span,
                        help="add `yield <value>` to the loop body, or drop the `let`")
            return T.UNKNOWN
        elem_t: T.Type | None = None
        for y, t in frame["yields"]:
            if elem_t is None:
                elem_t = t
                continue
            u = T.unify(elem_t, t)
            if u is None:
                self.report("E0201", f"every `yield` of a loop must have one type: expected "
                                     f"`{elem_t.show()}`, found `{t.show()}`", y.value.span)
            else:
                elem_t = u
        return T.ListT(elem_t if elem_t is not None else T.UNKNOWN)

    def s_For(self, s: A.For) -> bool:
        self.check_for(s, as_value=False)
        return False

    def s_Yield(self, s: A.Yield) -> bool:
        t = self.expr(s.value)
        if not self.for_stack:
            self.report("E0208", "`yield` outside a `for` loop", s.span,
                        help="`yield` gives the value of one iteration of "
                             "`let xs = for x in items { ... }`")
            return False
        frame = self.for_stack[-1]
        if not frame["as_value"]:
            self.report("E0208", "`yield` in a loop whose values are not used", s.span,
                        help="bind the loop's list: `let xs = for ... { ... yield v }`")
            return False
        frame["yields"].append((s, t))
        return False

    def s_Parallel(self, s: A.Parallel) -> bool:
        self.no_block_attrs(s, "parallel")
        return self.block(s.body, new_scope=False)

    def s_Transaction(self, s: A.Transaction) -> bool:
        self.no_block_attrs(s, "transaction")
        self.tx_sites.append((s, self.mod, self.wf))
        return self.block(s.body, new_scope=False)

    def s_Try(self, s: A.Try) -> bool:
        self.no_block_attrs(s, "try")
        ends = self.block(s.body)
        for c in s.catches:
            with self.child_scope() as scope:
                if c.binding is not None:
                    b = Binding(c.binding, T.ERROR_RECORD, "error", c.binding_span, c,
                                used=True)
                    scope.declare(b)
                    self.bindings[c] = b
                ends = self.block(c.body, new_scope=False) and ends
        return ends

    def s_Sleep(self, s: A.Sleep) -> bool:
        self.expect(s.duration, T.DURATION, what="`sleep`")
        return False

    def s_Emit(self, s: A.Emit) -> bool:
        if s.value is not None:
            t = self.expr(s.value)
            self.swallow(s.value, t)
        return False

    def s_Checkpoint(self, s: A.Checkpoint) -> bool:
        return False

    def s_Return(self, s: A.Return) -> bool:
        wf = self.wf
        if s.value is None:
            if wf.decl.result is not None and wf.result != T.NULL:
                self.report("E0205", f"`return` without a value in workflow `{wf.name}`, "
                                     f"which returns `{wf.result.show()}`", s.span,
                            help="write `return <value>`")
            return True
        if wf.decl.result is None:
            self.expr(s.value)
            self.report("E0205", f"workflow `{wf.name}` declares no result type, but "
                                 f"returns a value", s.value.span,
                        help=f"declare it: `workflow {wf.name}(...) -> <type>`")
            return True
        self.expect(s.value, wf.result, code="E0205", what="wrong return type")
        return True

    def s_Fail(self, s: A.Fail) -> bool:
        self.expect(s.message, T.STR, what="the failure message")
        return True

    def no_block_attrs(self, s, what: str) -> None:
        for a in s.attrs:
            self.report("E0301", f"`@{a.name}` cannot be applied to a `{what}` block", a.span,
                        help="`@retry` and `@timeout` go on step calls, `@concurrency` on "
                             "`for` loops")
