"""Attributes on nodes, workflows and statements (§4, §5, §9), validated into the
fields of :class:`NodeInfo`, :class:`WorkflowInfo` and :class:`StmtPolicy`.

Every problem is E0301 at the attribute (or at the offending argument), with a "did you
mean" for misspelled attribute and argument names — except an unknown node named in
``@compensate`` (E0102) and a compensation node that cannot be called from the step's
inputs and outputs (E0402, at the ``@compensate`` attribute).
"""

from __future__ import annotations

import re
from typing import Any

from ..diagnostics import did_you_mean
from ..grammar import ast as A
from . import types as T
from .consteval import NotConstant
from .program import (
    READ_RETRY,
    Backoff,
    ModuleInfo,
    NameRef,
    NodeInfo,
    RetryPolicy,
    StmtPolicy,
    WorkflowInfo,
)

NODE_ATTRS = ("impl", "effect", "compensate", "retry", "timeout", "idempotent",
              "transactional", "circuit_breaker", "bulkhead")
WORKFLOW_ATTRS = ("api", "mcp")
STMT_ATTRS = ("retry", "timeout", "concurrency")
ALL_ATTRS = set(NODE_ATTRS) | set(WORKFLOW_ATTRS) | set(STMT_ATTRS)
EFFECTS = ("pure", "read", "write")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

_IMPL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:"
                   r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_TOOL = re.compile(r"[A-Za-z0-9_-]{1,64}")


def snake_case(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s)
    return s.lower()


class AttributeChecker:
    """Mixin: attribute validation. See :class:`kailash_dsl.compiler.checker.Checker`."""

    # -- generic helpers -----------------------------------------------------------
    def _attr_problem(self, a: A.Attr, target: str, allowed: tuple[str, ...]) -> None:
        name = a.name
        if name in ALL_ATTRS:
            homes = []
            if name in NODE_ATTRS:
                homes.append("nodes")
            if name in WORKFLOW_ATTRS:
                homes.append("workflows")
            if name in STMT_ATTRS:
                homes.append("statements" if name != "concurrency" else "`for` loops")
            self.report("E0301", f"`@{name}` cannot be applied to {target}", a.span,
                        help=f"`@{name}` goes on " + " and ".join(homes))
            return
        guess = did_you_mean(name, allowed) if allowed else None
        if guess:
            help = f"did you mean `@{guess}`?"
        elif allowed:
            help = f"attributes of {target}: " + ", ".join(f"`@{x}`" for x in allowed)
        else:
            help = f"{target} take no attributes"
        self.report("E0301", f"unknown attribute `@{name}`", a.name_span, help=help)

    def _bind(self, a: A.Attr, positional: tuple[str, ...] = (), named: tuple[str, ...] = (),
              required: tuple[str, ...] = ()) -> dict[str, A.Arg]:
        out: dict[str, A.Arg] = {}
        everything = positional + tuple(n for n in named if n not in positional)
        reported = False
        for i, arg in enumerate(a.args):
            if arg.name is None:
                if i >= len(positional):
                    if positional:
                        msg = (f"`@{a.name}` takes {len(positional)} positional argument"
                               f"{'s' if len(positional) > 1 else ''}")
                    else:
                        msg = f"`@{a.name}` takes no positional arguments"
                    help = ("name it: " + ", ".join(f"`{n}: ...`" for n in everything)
                            if everything else f"write `@{a.name}`")
                    self.report("E0301", msg, arg.span, help=help)
                    reported = True
                    continue
                out[positional[i]] = arg
                continue
            if arg.name not in everything:
                guess = did_you_mean(arg.name, everything)
                help = f"did you mean `{guess}`?" if guess else (
                    f"`@{a.name}` takes " + ", ".join(f"`{n}`" for n in everything)
                    if everything else f"`@{a.name}` takes no arguments")
                self.report("E0301", f"`@{a.name}` has no argument `{arg.name}`",
                            arg.name_span, help=help)
                reported = True
                continue
            if arg.name in out:
                self.report("E0301", f"argument `{arg.name}` is given twice", arg.name_span)
                continue
            out[arg.name] = arg
        for r in required:
            # one problem per attribute: a misspelled required argument is not also missing
            if r not in out and not reported:
                self.report("E0301", f"`@{a.name}` needs `{r}`", a.span,
                            help=ATTR_EXAMPLES.get(a.name))
        return out

    def _const(self, a: A.Attr, arg: A.Arg, expected: T.Type, what: str) -> Any:
        """The constant value of an attribute argument of type ``expected``, or None."""
        with self.quiet() as suppressed, self.const_context("an attribute argument"):
            t = self.expr(arg.value, expected)
        if suppressed:
            d = suppressed[0]
            self.report("E0301", f"bad argument to `@{a.name}`: {d.message}", d.span,
                        help=d.help)
            return None
        if not T.assignable(t, expected) or isinstance(t, T.Unknown):
            self.report("E0301", f"`@{a.name}` expects {what}, found `{t.show()}`",
                        arg.value.span, help=ATTR_EXAMPLES.get(a.name))
            return None
        try:
            return self.const_value(arg.value)
        except NotConstant as exc:
            self.report("E0301", f"`@{a.name}` needs a constant: {exc.why}", arg.value.span)
            return None

    def _positive_int(self, a: A.Attr, arg: A.Arg | None, what: str) -> int | None:
        if arg is None:
            return None
        v = self._const(a, arg, T.INT, "an `int`")
        if v is None:
            return None
        if v < 1:
            self.report("E0301", f"{what} must be at least 1, found {v}", arg.value.span)
            return None
        return v

    def _duration(self, a: A.Attr, arg: A.Arg | None, zero_ok: bool = False) -> int | None:
        if arg is None:
            return None
        v = self._const(a, arg, T.DURATION, "a duration (e.g. `30s`)")
        if v is None:
            return None
        if v <= 0 and not (zero_ok and v == 0):
            self.report("E0301", "the duration must be positive", arg.value.span)
            return None
        return v

    def _string(self, a: A.Attr, arg: A.Arg | None) -> str | None:
        if arg is None:
            return None
        return self._const(a, arg, T.STR, "a string")

    def _word(self, a: A.Attr, arg: A.Arg, words: tuple[str, ...], what: str) -> str | None:
        e = arg.value
        if isinstance(e, A.Name):
            word = e.id
        elif isinstance(e, A.Literal) and e.kind == "str":
            word = e.value
        else:
            self.report("E0301", f"`@{a.name}` expects {what}: " +
                        " | ".join(f"`{w}`" for w in words), e.span)
            return None
        if word not in words:
            guess = did_you_mean(word, words)
            self.report("E0301", f"`{word}` is not {what}", e.span,
                        help=f"did you mean `{guess}`?" if guess else
                        "write one of " + ", ".join(f"`{w}`" for w in words))
            return None
        return word

    def _seen(self, attrs, target: str, allowed: tuple[str, ...]) -> list[A.Attr]:
        out = []
        seen: set[str] = set()
        for a in attrs:
            if a.name not in allowed:
                self._attr_problem(a, target, allowed)
                continue
            if a.name in seen:
                self.report("E0301", f"`@{a.name}` is given twice", a.span,
                            help="keep one of them")
                continue
            seen.add(a.name)
            out.append(a)
        return out

    # -- nodes -----------------------------------------------------------------------
    def node_attributes(self, info: NodeInfo) -> None:
        for a in self._seen(info.decl.attrs, "nodes", NODE_ATTRS):
            info.attrs[a.name] = a
            getattr(self, "_n_" + a.name)(info, a)

    def _n_impl(self, info: NodeInfo, a: A.Attr) -> None:
        args = self._bind(a, ("target",), (), ("target",))
        value = self._string(a, args.get("target"))
        if value is None:
            return
        if not _IMPL.fullmatch(value):
            self.report("E0301", f"`@impl` needs \"module:attribute\", found \"{value}\"",
                        args["target"].value.span,
                        help="e.g. `@impl(\"shop.payments:charge\")`")
            return
        info.impl = value

    def _n_effect(self, info: NodeInfo, a: A.Attr) -> None:
        args = self._bind(a, ("kind",), ("resource",), ("kind",))
        if "kind" in args:
            kind = self._word(a, args["kind"], EFFECTS, "an effect")
            if kind is not None:
                info.effect = kind
        res = self._string(a, args.get("resource"))
        if res is not None:
            if not res:
                self.report("E0301", "the resource name is empty", args["resource"].value.span)
            else:
                info.resource = res

    def _n_compensate(self, info: NodeInfo, a: A.Attr) -> None:
        args = self._bind(a, ("node",), (), ("node",))
        arg = args.get("node")
        if arg is None:
            return
        target = self._node_ref(a, arg.value)
        if target is None:
            return
        if target is info:
            self.report("E0301", f"node `{info.name}` cannot compensate itself",
                        arg.value.span)
            return
        info.compensate = target
        self._pending_compensations.append((info, a))

    def _node_ref(self, a: A.Attr, e: A.Expr) -> NodeInfo | None:
        mod: ModuleInfo = self.mod
        name = None
        span = e.span
        if isinstance(e, A.Name):
            name = e.id
            sym = mod.scope.get(name)
        elif isinstance(e, A.Attribute) and isinstance(e.obj, A.Name) \
                and isinstance(mod.scope.get(e.obj.id), ModuleInfo):
            other = mod.scope[e.obj.id]
            self.names[e.obj] = NameRef("module", other)
            if other.parse_failed:
                return None
            from .check_expr import exported, exported_names
            name = e.name
            span = e.name_span
            sym = exported(other, name)
            if sym is None:
                guess = did_you_mean(name, exported_names(other, (NodeInfo,)))
                self.report("E0102", f"module `{other.name}` has no node `{name}`", span,
                            help=f"did you mean `{guess}`?" if guess else None)
                return None
        else:
            self.report("E0301", f"`@{a.name}` expects the name of a node", e.span,
                        help=f"e.g. `@{a.name}(Refund)`")
            return None
        if isinstance(sym, NodeInfo):
            self.names[e] = NameRef("node", sym)
            return sym
        if sym is None:
            cands = [n for n, s in mod.scope.items() if isinstance(s, NodeInfo)]
            guess = did_you_mean(name, cands)
            self.report("E0102", f"cannot find node `{name}`", span,
                        help=f"did you mean `{guess}`?" if guess else None)
            return None
        from .check_expr import describe_symbol
        self.report("E0301", f"`@{a.name}` needs a node, found {describe_symbol(sym)}", span,
                    help="compensations are nodes" if isinstance(sym, WorkflowInfo) else None)
        return None

    def _n_retry(self, info: NodeInfo, a: A.Attr) -> None:
        policy = self.retry_policy(a)
        if policy is not None:
            info.retry = policy

    def _n_timeout(self, info: NodeInfo, a: A.Attr) -> None:
        args = self._bind(a, ("after",), (), ("after",))
        ms = self._duration(a, args.get("after"))
        if ms is not None:
            info.timeout_ms = ms

    def _n_idempotent(self, info: NodeInfo, a: A.Attr) -> None:
        self._bind(a)
        info.idempotent = True

    def _n_transactional(self, info: NodeInfo, a: A.Attr) -> None:
        args = self._bind(a, (), ("resource",))
        res = self._string(a, args.get("resource"))
        info.transactional = res or ""  # "" → the effect's resource (see finish)

    def _n_circuit_breaker(self, info: NodeInfo, a: A.Attr) -> None:
        args = self._bind(a, (), ("failures", "reset"))
        failures = self._positive_int(a, args.get("failures"), "`failures`")
        reset = self._duration(a, args.get("reset"))
        if "failures" in args and failures is None or "reset" in args and reset is None:
            return
        info.circuit_breaker = (failures or 5, reset or 60_000)

    def _n_bulkhead(self, info: NodeInfo, a: A.Attr) -> None:
        args = self._bind(a, ("limit",), (), ("limit",))
        limit = self._positive_int(a, args.get("limit"), "`limit`")
        if limit is not None:
            info.bulkhead = limit

    def finish_node_attributes(self, info: NodeInfo) -> None:
        """Checks that need every attribute of the node (run after all of them)."""
        if info.transactional == "":
            info.transactional = info.resource or info.qualname
        if info.transactional is not None and info.effect != "write":
            a = info.attrs["transactional"]
            self.report("E0301", f"`@transactional` needs a write node; `{info.name}` is "
                                 f"`{info.effect}`", a.span,
                        help="remove `@transactional`, or declare `@effect(write, ...)`")
        if info.compensate is not None and info.effect != "write":
            a = info.attrs["compensate"]
            self.report("E0301", f"only write nodes need `@compensate`; `{info.name}` is "
                                 f"`{info.effect}`", a.span)

    # -- compensation (E0402) ----------------------------------------------------------
    def check_compensation(self, info: NodeInfo, a: A.Attr) -> None:
        comp = info.compensate
        if comp is None:
            return
        self.signature(info)
        self.signature(comp)
        inputs = {p.name: p.type for p in info.params}
        outputs: dict[str, T.Type] = {}
        result = T.strip_optional(info.result)
        if isinstance(result, T.RecordT):
            outputs = {f.name: f.type for f in result.fields}
        available = {**inputs, **outputs}
        missing, wrong = [], []
        for p in comp.params:
            if p.has_default:
                continue
            if p.name not in available:
                missing.append(p)
            elif not T.assignable(available[p.name], p.type):
                wrong.append((p, available[p.name]))
        if not missing and not wrong:
            return
        problems = []
        for p in missing:
            problems.append(f"no `{p.name}` among its inputs or outputs")
        for p, got in wrong:
            problems.append(f"`{p.name}` is `{got.show()}`, `{comp.name}` needs "
                            f"`{p.type.show()}`")
        helps = []
        for p in missing:
            guess = did_you_mean(p.name, list(available))
            if guess:
                helps.append(f"`{guess}` is close to `{p.name}`: rename one of them")
        ins = ", ".join(f"`{n}`" for n in inputs) or "none"
        outs = ", ".join(f"`{n}`" for n in outputs) or "none"
        helps.append(f"`{comp.name}` is called with arguments taken by name from "
                     f"`{info.name}`'s inputs ({ins}) and outputs ({outs})")
        self.report("E0402", f"compensation `{comp.name}` cannot be called from "
                             f"`{info.name}`: " + "; ".join(problems), a.span,
                    help="; ".join(helps))

    # -- retry ---------------------------------------------------------------------------
    def retry_policy(self, a: A.Attr) -> RetryPolicy | None:
        args = self._bind(a, (), ("attempts", "backoff"), ("attempts",))
        attempts = self._positive_int(a, args.get("attempts"), "`attempts`")
        backoff = READ_RETRY.backoff
        if "backoff" in args:
            b = self._backoff(a, args["backoff"].value)
            if b is None:
                return None
            backoff = b
        if attempts is None:
            return None
        return RetryPolicy(attempts, backoff)

    def _backoff(self, a: A.Attr, e: A.Expr) -> Backoff | None:
        kinds = ("constant", "exponential")
        if not (isinstance(e, A.Call) and isinstance(e.func, A.Name)):
            self.report("E0301", "`backoff` must be `constant(d)` or "
                                 "`exponential(d, max: d2, jitter: true)`", e.span)
            return None
        kind = e.func.id
        if kind not in kinds:
            guess = did_you_mean(kind, kinds)
            self.report("E0301", f"unknown backoff `{kind}`", e.func.span,
                        help=f"did you mean `{guess}`?" if guess else
                        "write `constant(d)` or `exponential(d, max: d2, jitter: true)`")
            return None
        fake = A.Attr(kind, e.args, e.func.span, e.span)
        if kind == "constant":
            args = self._bind(fake, ("delay",), (), ("delay",))
            d = self._duration(fake, args.get("delay"), zero_ok=True)
            return None if d is None else Backoff("constant", d, None, False)
        args = self._bind(fake, ("base",), ("max", "jitter"), ("base",))
        base = self._duration(fake, args.get("base"))
        mx = self._duration(fake, args.get("max"))
        jitter = False
        if "jitter" in args:
            jitter = self._const(fake, args["jitter"], T.BOOL, "`true` or `false`")
            if jitter is None:
                return None
        if base is None or ("max" in args and mx is None):
            return None
        if mx is not None and mx < base:
            self.report("E0301", "`max` is smaller than the base delay", args["max"].value.span)
            return None
        return Backoff("exponential", base, mx, bool(jitter))

    # -- workflows -------------------------------------------------------------------------
    def workflow_attributes(self, info: WorkflowInfo) -> None:
        for a in self._seen(info.decl.attrs, "workflows", WORKFLOW_ATTRS):
            info.attrs[a.name] = a
            if a.name == "api":
                self._w_api(info, a)
            else:
                self._w_mcp(info, a)

    def _w_api(self, info: WorkflowInfo, a: A.Attr) -> None:
        args = self._bind(a, ("path",), ("method", "roles"))
        path = self._string(a, args.get("path"))
        if path is not None:
            if not path.startswith("/"):
                self.report("E0301", f"the API path must start with `/`, found \"{path}\"",
                            args["path"].value.span)
                path = None
            else:
                params = {p.name for p in info.params}
                for m in re.finditer(r"\{([^}]*)\}", path):
                    if m.group(1) not in params:
                        guess = did_you_mean(m.group(1), params)
                        self.report("E0301", f"path parameter `{{{m.group(1)}}}` is not a "
                                             f"parameter of `{info.name}`",
                                    args["path"].value.span,
                                    help=f"did you mean `{{{guess}}}`?" if guess else None)
                        path = None
        info.api_path = path or f"/workflows/{info.name}"
        if "method" in args:
            method = self._string(a, args["method"])
            if method is not None:
                if method.upper() not in HTTP_METHODS:
                    guess = did_you_mean(method.upper(), HTTP_METHODS)
                    self.report("E0301", f"unknown HTTP method \"{method}\"",
                                args["method"].value.span,
                                help=f"did you mean \"{guess}\"?" if guess else
                                "use " + ", ".join(HTTP_METHODS))
                else:
                    info.api_method = method.upper()
        if "roles" in args:
            roles = self._const(a, args["roles"], T.ListT(T.STR), "a list of strings")
            if roles is not None:
                info.api_roles = tuple(roles)

    def _w_mcp(self, info: WorkflowInfo, a: A.Attr) -> None:
        args = self._bind(a, ("name",), ())
        name = self._string(a, args.get("name"))
        if name is not None and not _TOOL.fullmatch(name):
            self.report("E0301", f"\"{name}\" is not a valid MCP tool name",
                        args["name"].value.span,
                        help="use letters, digits, `_` and `-` (at most 64)")
            name = None
        info.mcp_name = name or snake_case(info.name)

    def no_decl_attributes(self, decl, what: str) -> None:
        for a in decl.attrs:
            self._attr_problem(a, what, ())

    # -- statements --------------------------------------------------------------------------
    def statement_policy(self, attrs, is_step: bool, is_for: bool) -> StmtPolicy | None:
        retry = timeout = concurrency = None
        seen: set[str] = set()
        for a in attrs:
            if a.name not in STMT_ATTRS:
                self._attr_problem(a, "statements", STMT_ATTRS)
                continue
            if a.name in seen:
                self.report("E0301", f"`@{a.name}` is given twice", a.span)
                continue
            seen.add(a.name)
            if a.name == "concurrency":
                if not is_for:
                    self.report("E0301", "`@concurrency` goes on a `for` loop", a.span,
                                help="write it above `for ...` or `let xs = for ...`")
                    continue
                args = self._bind(a, ("limit",), (), ("limit",))
                concurrency = self._positive_int(a, args.get("limit"), "`@concurrency`")
                continue
            if not is_step:
                self.report("E0301", f"`@{a.name}` goes on a node or workflow call", a.span,
                            help="it overrides the node's own policy for this one call")
                continue
            if a.name == "retry":
                retry = self.retry_policy(a)
            else:
                args = self._bind(a, ("after",), (), ("after",))
                timeout = self._duration(a, args.get("after"))
        if retry is None and timeout is None and concurrency is None:
            return None
        return StmtPolicy(retry, timeout, concurrency)


ATTR_EXAMPLES = {
    "impl": "e.g. `@impl(\"shop.payments:charge\")`",
    "effect": "e.g. `@effect(write, resource: \"payments\")`",
    "retry": "e.g. `@retry(attempts: 3, backoff: exponential(200ms, max: 5s))`",
    "timeout": "e.g. `@timeout(30s)`",
    "transactional": "e.g. `@transactional(resource: \"pg-main\")`",
    "circuit_breaker": "e.g. `@circuit_breaker(failures: 5, reset: 60s)`",
    "bulkhead": "e.g. `@bulkhead(limit: 10)`",
    "concurrency": "e.g. `@concurrency(4)`",
    "api": "e.g. `@api(path: \"/orders\", method: \"POST\")`",
    "mcp": "e.g. `@mcp(name: \"process_order\")`",
    "compensate": "e.g. `@compensate(Refund)`",
}
