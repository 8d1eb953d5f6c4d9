"""The kflow abstract syntax tree.

Every node is a frozen, slotted dataclass carrying a :class:`Span` built from the tokens
it came from. Nodes compare by identity (``eq=False``) so later stages can key side
tables (types, resolved call targets) on them cheaply; use :func:`same_shape` to compare
two trees structurally, ignoring spans (the formatter's meaning check does).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Union

_NODE = dict(frozen=True, slots=True, eq=False)


@dataclass(frozen=True, slots=True)
class Span:
    """A 1-based, end-inclusive-line / end-exclusive-column source range."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def to(self, other: "Span") -> "Span":
        """The span from the start of ``self`` to the end of ``other``."""
        return Span(self.file, self.line, self.column, other.end_line, other.end_column)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NO_SPAN = Span("<builtin>", 0, 0, 0, 0)


# --------------------------------------------------------------------------- types


@dataclass(**_NODE)
class TypeName:
    """``int``, ``Order``, ``m.Order`` (``name`` may be dotted)."""

    name: str
    span: Span


@dataclass(**_NODE)
class TypeGeneric:
    """``list[T]`` and ``map[T]``."""

    name: str
    args: tuple["TypeExpr", ...]
    span: Span


@dataclass(**_NODE)
class TypeOptional:
    inner: "TypeExpr"
    span: Span


@dataclass(**_NODE)
class TypeRecord:
    fields: tuple["Field", ...]
    span: Span


TypeExpr = Union[TypeName, TypeGeneric, TypeOptional, TypeRecord]


# --------------------------------------------------------------------------- expressions


@dataclass(**_NODE)
class Literal:
    """A constant. ``kind`` is int|float|str|bool|null|duration (value in ms) |bytes."""

    value: Any
    kind: str
    span: Span


@dataclass(**_NODE)
class Interpolated:
    """``"a ${x} b"``: ``parts`` alternate literal text and expressions."""

    parts: tuple[Union[str, "Expr"], ...]
    span: Span


@dataclass(**_NODE)
class Name:
    id: str
    span: Span


@dataclass(**_NODE)
class Attribute:
    """``obj.name``; ``optional`` for ``obj?.name``."""

    obj: "Expr"
    name: str
    optional: bool
    name_span: Span
    span: Span


@dataclass(**_NODE)
class Index:
    obj: "Expr"
    index: "Expr"
    span: Span


@dataclass(**_NODE)
class Arg:
    """A call or attribute argument; ``name`` is None for a positional one."""

    name: str | None
    value: "Expr"
    name_span: Span | None
    span: Span


@dataclass(**_NODE)
class Call:
    func: "Expr"
    args: tuple[Arg, ...]
    span: Span


@dataclass(**_NODE)
class Unary:
    op: str  # "-" | "not"
    operand: "Expr"
    span: Span


@dataclass(**_NODE)
class Binary:
    op: str
    left: "Expr"
    right: "Expr"
    op_span: Span
    span: Span


@dataclass(**_NODE)
class IfExpr:
    cond: "Expr"
    then: "Expr"
    orelse: "Expr"
    span: Span


@dataclass(**_NODE)
class ListLit:
    items: tuple["Expr", ...]
    span: Span


@dataclass(**_NODE)
class FieldInit:
    name: str
    value: "Expr"
    name_span: Span
    span: Span


@dataclass(**_NODE)
class RecordLit:
    """``{a: 1}``; ``{}`` is a RecordLit with no fields (record or map, as needed)."""

    fields: tuple[FieldInit, ...]
    span: Span


@dataclass(**_NODE)
class MapEntry:
    key: str
    value: "Expr"
    key_span: Span
    span: Span


@dataclass(**_NODE)
class MapLit:
    entries: tuple[MapEntry, ...]
    span: Span


@dataclass(**_NODE)
class Comprehension:
    elem: "Expr"
    var: str
    var_span: Span
    iterable: "Expr"
    cond: "Expr | None"
    span: Span


@dataclass(**_NODE)
class TryElse:
    """``try Node(...) else Other(...)``."""

    primary: "Expr"
    fallback: "Expr"
    span: Span


@dataclass(**_NODE)
class Wait:
    """``wait "signal" timeout d``."""

    signal: str
    timeout: "Expr | None"
    signal_span: Span
    span: Span


@dataclass(**_NODE)
class For:
    """``for x in xs { ... }``, a statement, or an expression when it yields."""

    var: str
    var_span: Span
    iterable: "Expr"
    body: "Block"
    attrs: tuple["Attr", ...]
    span: Span


Expr = Union[
    Literal, Interpolated, Name, Attribute, Index, Call, Unary, Binary, IfExpr, ListLit,
    RecordLit, MapLit, Comprehension, TryElse, Wait, For,
]


# --------------------------------------------------------------------------- statements


@dataclass(**_NODE)
class Attr:
    """``@name(args)`` on a declaration or a statement."""

    name: str
    args: tuple[Arg, ...]
    name_span: Span
    span: Span


@dataclass(**_NODE)
class Block:
    stmts: tuple["Stmt", ...]
    span: Span


@dataclass(**_NODE)
class Let:
    name: str
    name_span: Span
    type: TypeExpr | None
    value: Expr
    when: Expr | None
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(**_NODE)
class ExprStmt:
    """A call (or ``wait``) whose result is discarded, optionally guarded by ``when``."""

    expr: Expr
    when: Expr | None
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(**_NODE)
class If:
    branches: tuple[tuple[Expr, Block], ...]
    orelse: Block | None
    span: Span


@dataclass(**_NODE)
class Yield:
    value: Expr
    span: Span


@dataclass(**_NODE)
class Parallel:
    body: Block
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(**_NODE)
class Transaction:
    kind: str | None  # None | "saga" | "2pc"
    body: Block
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(**_NODE)
class Catch:
    kinds: tuple[tuple[str, Span], ...]
    binding: str | None
    binding_span: Span | None
    body: Block
    span: Span


@dataclass(**_NODE)
class Try:
    body: Block
    catches: tuple[Catch, ...]
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(**_NODE)
class Sleep:
    duration: Expr
    span: Span


@dataclass(**_NODE)
class Emit:
    name: str
    value: Expr | None
    span: Span


@dataclass(**_NODE)
class Checkpoint:
    span: Span


@dataclass(**_NODE)
class Return:
    value: Expr | None
    span: Span


@dataclass(**_NODE)
class Fail:
    """``fail "msg"`` (kind None → ``Failed``) or ``fail Kind("msg")``."""

    kind: str | None
    kind_span: Span | None
    message: Expr
    span: Span


Stmt = Union[
    Let, ExprStmt, If, For, Yield, Parallel, Transaction, Try, Sleep, Emit, Checkpoint,
    Return, Fail,
]


# --------------------------------------------------------------------------- declarations


@dataclass(**_NODE)
class Field:
    """A record-type field or a parameter: ``name: type [= default]``."""

    name: str
    type: TypeExpr
    default: Expr | None
    name_span: Span
    span: Span


Param = Field


@dataclass(**_NODE)
class Import:
    """``import std.http [as x]`` (``is_file`` False) or ``import "./x.kflow" as x``."""

    target: str
    alias: str | None
    is_file: bool
    target_span: Span
    span: Span

    @property
    def local_name(self) -> str:
        if self.alias:
            return self.alias
        if self.is_file:
            stem = self.target.rsplit("/", 1)[-1]
            return stem[:-6] if stem.endswith(".kflow") else stem
        return self.target.rsplit(".", 1)[-1]


@dataclass(**_NODE)
class ModuleDecl:
    name: str
    span: Span


@dataclass(**_NODE)
class Const:
    name: str
    name_span: Span
    type: TypeExpr | None
    value: Expr
    doc: str | None
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(**_NODE)
class TypeDecl:
    """``type Name { fields }`` (``fields``) or ``type Name = T`` (``alias``)."""

    name: str
    name_span: Span
    fields: tuple[Field, ...] | None
    alias: TypeExpr | None
    doc: str | None
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(**_NODE)
class EnumDecl:
    name: str
    name_span: Span
    members: tuple[tuple[str, Span], ...]
    doc: str | None
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(**_NODE)
class NodeDecl:
    name: str
    name_span: Span
    params: tuple[Field, ...]
    result: TypeExpr | None
    attrs: tuple[Attr, ...]
    doc: str | None
    span: Span


@dataclass(**_NODE)
class WorkflowDecl:
    name: str
    name_span: Span
    params: tuple[Field, ...]
    result: TypeExpr | None
    attrs: tuple[Attr, ...]
    doc: str | None
    body: Block
    span: Span


Decl = Union[Const, TypeDecl, EnumDecl, NodeDecl, WorkflowDecl]


@dataclass(frozen=True, slots=True)
class Comment:
    """A source comment, kept for doc comments and the formatter."""

    text: str  # including the leading '#'
    span: Span


@dataclass(**_NODE)
class Module:
    path: str
    name: str
    module_decl: ModuleDecl | None
    imports: tuple[Import, ...]
    decls: tuple[Decl, ...]
    comments: tuple[Comment, ...]
    span: Span


# --------------------------------------------------------------------------- helpers


def same_shape(a: Any, b: Any) -> bool:
    """Structural equality ignoring spans (and comments): the formatter's meaning check."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_shape(x, y) for x, y in zip(a, b))
    if isinstance(a, Span):
        return True
    if hasattr(a, "__dataclass_fields__"):
        for f in fields(a):
            if f.name in ("span", "comments") or f.name.endswith("_span"):
                continue
            if not same_shape(getattr(a, f.name), getattr(b, f.name)):
                return False
        return True
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (a != a and b != b)
    return a == b


def walk(node: Any):
    """Yield ``node`` and every AST node below it, depth first."""
    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, (list, tuple)):
            stack.extend(reversed(cur))
            continue
        if not hasattr(cur, "__dataclass_fields__") or isinstance(cur, Span):
            continue
        yield cur
        for f in reversed(fields(cur)):
            if f.name == "span" or f.name.endswith("_span"):
                continue
            val = getattr(cur, f.name)
            if isinstance(val, (list, tuple)) or hasattr(val, "__dataclass_fields__"):
                stack.append(val)
