"""The checked program: what the checker hands to the compiler, emitters and tools.

The checker resolves every name, call and type once; later stages read these tables
instead of re-deriving them. AST nodes compare by identity, so the side tables are plain
dicts keyed by the AST node objects themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from ..diagnostics import Diagnostic
from ..grammar import ast as A
from .types import Type


@dataclass(frozen=True)
class Backoff:
    kind: str = "exponential"  # "constant" | "exponential"
    base_ms: int = 100
    max_ms: int | None = None
    jitter: bool = False


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 1
    backoff: Backoff = field(default_factory=Backoff)


#: §9 defaults: no retry for writes; reads get 3 attempts, exponential(100ms, max: 2s).
NO_RETRY = RetryPolicy(1, Backoff("constant", 0, None, False))
READ_RETRY = RetryPolicy(3, Backoff("exponential", 100, 2000, False))


@dataclass
class ParamInfo:
    name: str
    type: Type
    decl: A.Field
    has_default: bool
    default: A.Expr | None  # the default expression (evaluated at call time)


@dataclass(eq=False)
class NodeInfo:
    decl: A.NodeDecl
    module: "ModuleInfo"
    name: str
    qualname: str  # "<module name>.<Name>"
    params: list[ParamInfo]
    result: Type
    doc: str | None
    impl: str | None  # "python.module:attr"
    effect: str = "write"  # pure | read | write
    resource: str | None = None
    compensate: "NodeInfo | None" = None
    retry: RetryPolicy | None = None  # None → the effect's default (§9)
    timeout_ms: int | None = None
    idempotent: bool = False
    transactional: str | None = None  # resource of a 2PC participant
    circuit_breaker: tuple[int, int] | None = None  # (failures, reset_ms)
    bulkhead: int | None = None
    attrs: dict[str, A.Attr] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "node"


@dataclass(eq=False)
class WorkflowInfo:
    decl: A.WorkflowDecl
    module: "ModuleInfo"
    name: str
    qualname: str
    params: list[ParamInfo]
    result: Type  # NULL when no `-> T`
    doc: str | None
    api_path: str | None = None
    api_method: str = "POST"
    api_roles: tuple[str, ...] = ()
    mcp_name: str | None = None
    #: every node reachable from the workflow, through sub-workflow calls too
    reachable_nodes: list[NodeInfo] = field(default_factory=list)
    attrs: dict[str, A.Attr] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "workflow"


@dataclass(eq=False)
class TypeInfo:
    decl: A.TypeDecl
    module: "ModuleInfo"
    name: str
    type: Type  # resolved (records are RecordT with name=decl name)
    doc: str | None


@dataclass(eq=False)
class EnumInfo:
    decl: A.EnumDecl
    module: "ModuleInfo"
    name: str
    type: Type  # EnumT
    doc: str | None


@dataclass(eq=False)
class ConstInfo:
    decl: A.Const
    module: "ModuleInfo"
    name: str
    type: Type
    value: Any  # evaluated at check time (consts are pure expressions)


Symbol = Union[NodeInfo, WorkflowInfo, TypeInfo, EnumInfo, ConstInfo, "ModuleInfo"]


@dataclass(eq=False)
class ModuleInfo:
    path: str  # absolute path, or "std:<name>" for the standard library
    name: str  # "std.http", "shop.orders", or the file stem
    ast: A.Module
    #: every name the module exports or imports: decls, and imported modules by local name
    scope: dict[str, Symbol] = field(default_factory=dict)
    is_std: bool = False
    #: each `import` with the module it resolved to (None: unknown import, E0104)
    imported: list[tuple[A.Import, "ModuleInfo | None"]] = field(default_factory=list)
    #: the file could not be read or parsed; names looked up in it are not reported
    parse_failed: bool = False

    @property
    def kind(self) -> str:
        return "module"


@dataclass(eq=False)
class Binding:
    """A local name: a parameter, `let`, loop variable, or `catch ... as e`."""

    name: str
    type: Type
    kind: str  # "param" | "let" | "loop" | "error" | "comprehension"
    span: A.Span
    node: Any = None  # the A.Let / A.Field / A.For / A.Catch / A.Comprehension
    used: bool = False


@dataclass(frozen=True)
class CallTarget:
    """What a call expression calls."""

    kind: str  # "node" | "workflow" | "builtin"
    target: Any  # NodeInfo | WorkflowInfo | builtin name (str)


@dataclass(frozen=True)
class NameRef:
    """What a Name expression (or a dotted Attribute chain) refers to."""

    #: "local" | "const" | "enum_member" | "module" | "enum" | "type", and for a name in
    #: call position (or in `@compensate`): "node" | "workflow" | "builtin" (target: name)
    kind: str
    target: Any  # Binding | ConstInfo | (EnumInfo, member) | ModuleInfo | EnumInfo | TypeInfo


@dataclass(frozen=True)
class TxPlan:
    """The pattern the compiler uses for one `transaction` block, and why (§8)."""

    pattern: str  # "saga" | "2pc" | "invalid"
    reason: str
    #: for a saga, the pivot step's statement (a write with no @compensate), if any
    pivot: Any = None
    #: the block's write steps (their A.Call nodes), in textual order
    writes: tuple = ()


@dataclass(frozen=True)
class StmtPolicy:
    """`@retry`, `@timeout` and `@concurrency` written on one statement (§5)."""

    retry: RetryPolicy | None = None
    timeout_ms: int | None = None
    concurrency: int | None = None


@dataclass(eq=False)
class Program:
    """Everything the checker learned about an entry file and its imports."""

    entry: ModuleInfo
    modules: dict[str, ModuleInfo]  # by path
    diagnostics: list[Diagnostic]
    #: static type of every expression the checker visited
    types: dict[Any, Type] = field(default_factory=dict)
    #: resolved target of every Call expression (absent for enum/error-kind forms)
    calls: dict[Any, CallTarget] = field(default_factory=dict)
    #: resolution of Name expressions, and of Attribute chains that name a module member
    #: or enum member (e.g. `m.Square`, `Status.paid`)
    names: dict[Any, NameRef] = field(default_factory=dict)
    #: the Binding each `let` / `for` / `catch` / comprehension introduces
    bindings: dict[Any, Binding] = field(default_factory=dict)
    #: the plan for every A.Transaction statement
    transactions: dict[Any, TxPlan] = field(default_factory=dict)
    #: the signal payload type of every A.Wait (from the `let` annotation; T of `T?`)
    waits: dict[Any, Type] = field(default_factory=dict)
    #: statement-level attributes, validated: stmt -> StmtPolicy
    stmt_policy: dict[Any, "StmtPolicy"] = field(default_factory=dict)
    #: transaction plans' human explanations for `--explain`, in source order
    explanations: list[tuple[A.Span, str]] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def workflows(self, module: ModuleInfo | None = None) -> list[WorkflowInfo]:
        """The workflows declared in ``module`` (default: the entry file), in order."""
        mod = module or self.entry
        return [s for s in mod.scope.values()
                if isinstance(s, WorkflowInfo) and s.module is mod]
