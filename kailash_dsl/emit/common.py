"""Helpers shared by the emitters: loading, constant defaults, naming, effect analysis.

Everything here is deterministic: iteration follows source order (dicts keep insertion
order), never hash order, so the same input gives byte-identical output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..compiler import types as T
from ..compiler.program import (
    EnumInfo,
    ModuleInfo,
    NodeInfo,
    Program,
    TypeInfo,
    WorkflowInfo,
)
from ..grammar import ast as A


class EmitError(Exception):
    """The program cannot be emitted (e.g. it has errors, or two operations collide)."""


# ----------------------------------------------------------------------------- loading


def load_programs(paths: Iterable[str]) -> list[Program]:
    """Check each file; raise :class:`EmitError` with the rendered errors if any has some."""
    from ..compiler.api import load_program

    programs = []
    for path in paths:
        program = load_program(str(path))
        if program.has_errors:
            lines = [f"{path}: the program has errors; run `kflow check {path}`"]
            for d in program.diagnostics:
                if d.is_error:
                    lines.append(f"  {d.span}: error[{d.code}]: {d.message}")
            raise EmitError("\n".join(lines))
        programs.append(program)
    return programs


# ----------------------------------------------------------------------------- defaults


class _NotConst:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "NOT_CONST"


NOT_CONST: Any = _NotConst()


def const_value(expr: A.Expr | None, program: Program | None = None) -> Any:
    """The runtime value of a constant expression, or :data:`NOT_CONST`.

    Handles literals, negation, list/record/map literals of constants, interpolations of
    constants, module constants and enum members (``Status.paid``).
    """
    if expr is None:
        return NOT_CONST
    if isinstance(expr, A.Literal):
        return expr.value
    if isinstance(expr, A.Unary) and expr.op == "-":
        v = const_value(expr.operand, program)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v
        return NOT_CONST
    if isinstance(expr, A.ListLit):
        items = [const_value(e, program) for e in expr.items]
        return NOT_CONST if any(i is NOT_CONST for i in items) else items
    if isinstance(expr, A.RecordLit):
        out = {}
        for f in expr.fields:
            v = const_value(f.value, program)
            if v is NOT_CONST:
                return NOT_CONST
            out[f.name] = v
        return out
    if isinstance(expr, A.MapLit):
        out = {}
        for e in expr.entries:
            v = const_value(e.value, program)
            if v is NOT_CONST:
                return NOT_CONST
            out[e.key] = v
        return out
    if isinstance(expr, A.Interpolated):
        parts = []
        for p in expr.parts:
            if isinstance(p, str):
                parts.append(p)
                continue
            v = const_value(p, program)
            if v is NOT_CONST or not isinstance(v, str):
                return NOT_CONST
            parts.append(v)
        return "".join(parts)
    if program is not None and isinstance(expr, (A.Name, A.Attribute)):
        ref = program.names.get(expr)
        if ref is not None:
            if ref.kind == "const":
                return ref.target.value
            if ref.kind == "enum_member":
                return ref.target[1]
        if isinstance(expr, A.Attribute):
            # `Status.paid` when the checker did not record the chain itself
            base = program.names.get(expr.obj)
            if base is not None and base.kind == "enum":
                return expr.name
    return NOT_CONST


def json_default(t: T.Type, value: Any) -> Any:
    """A default's JSON form (durations as literals, bytes as base64)."""
    return T.to_json(t, value)


def field_default(f: T.FieldT, decl: A.Field | None, program: Program | None) -> Any:
    """The constant default of a record field, or :data:`NOT_CONST`."""
    if not f.has_default:
        return NOT_CONST
    if decl is not None and decl.default is not None:
        v = const_value(decl.default, program)
        if v is not NOT_CONST:
            return v
    if f.default is not None:
        return f.default
    if decl is None and T.is_optional(f.type):
        return None
    return NOT_CONST


# ----------------------------------------------------------------------------- lookup


@dataclass(frozen=True)
class NamedType:
    """A declared record or enum, as found in some module."""

    key: str
    name: str
    module: str  # module name ("shop.orders", "std.http")
    doc: str | None
    decl: Any  # A.TypeDecl | A.EnumDecl | None
    program: Program | None


def type_key(t: T.Type) -> str:
    """A canonical, hashable description of a type (records can hold unhashable defaults)."""
    if isinstance(t, T.Prim):
        return t.name
    if isinstance(t, T.Unknown):
        return "?"
    if isinstance(t, T.Optional):
        return type_key(t.inner) + "?"
    if isinstance(t, T.ListT):
        return f"list[{type_key(t.elem)}]"
    if isinstance(t, T.MapT):
        return f"map[{type_key(t.elem)}]"
    if isinstance(t, T.EnumT):
        return f"enum {t.qualname or t.name}({','.join(t.members)})"
    if isinstance(t, T.ErrorT):
        return "Error"
    if isinstance(t, T.RecordT):
        parts = []
        for f in t.fields:
            d = ""
            if f.has_default:
                try:
                    d = "=" + json.dumps(T.to_json(f.type, f.default), sort_keys=True)
                except (TypeError, ValueError):
                    d = "=?"
            parts.append(f"{f.name}:{type_key(f.type)}{d}")
        return f"{t.name or ''}{{{','.join(parts)}}}"
    return repr(t)


class TypeIndex:
    """Declared named types of every module of some programs, by :func:`type_key`."""

    def __init__(self, programs: Iterable[Program] = ()):
        self.by_key: dict[str, NamedType] = {}
        for p in programs:
            self.add_program(p)

    def add_program(self, program: Program) -> None:
        for mod in _modules_in_order(program):
            for sym in list(mod.scope.values()):
                if isinstance(sym, (TypeInfo, EnumInfo)) and sym.module is mod:
                    t = sym.type
                    if not isinstance(t, (T.RecordT, T.EnumT)):
                        continue
                    key = type_key(t)
                    self.by_key.setdefault(key, NamedType(
                        key, sym.name, mod.name, sym.doc, sym.decl, program))

    def lookup(self, t: T.Type) -> NamedType | None:
        return self.by_key.get(type_key(t))


def _modules_in_order(program: Program) -> list[ModuleInfo]:
    mods = [program.entry]
    mods += [m for m in program.modules.values() if m is not program.entry]
    return mods


def decl_field(decl: Any, name: str) -> A.Field | None:
    """The AST field ``name`` of a ``type X { ... }`` declaration, if there is one."""
    fields = getattr(decl, "fields", None)
    if not fields:
        return None
    for f in fields:
        if f.name == name:
            return f
    return None


def is_named(t: T.Type) -> bool:
    return isinstance(t, T.EnumT) or (isinstance(t, T.RecordT) and bool(t.name))


# ----------------------------------------------------------------------------- names


def snake_case(name: str) -> str:
    """``ProcessOrder`` → ``process_order``; ``HTTPGet`` → ``http_get``."""
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s)
    return s.replace("__", "_").lower()


def title_case(name: str) -> str:
    """``ProcessOrder`` → ``Process Order``; ``send_mail`` → ``Send Mail``."""
    return " ".join(w[:1].upper() + w[1:] for w in snake_case(name).split("_") if w)


def doc_summary(doc: str | None) -> str | None:
    """The first sentence-ish line of a doc comment."""
    if not doc:
        return None
    first = doc.strip().split("\n\n", 1)[0].replace("\n", " ").strip()
    return first or None


class Namer:
    """Hands out unique names in call order: the first asker of a name keeps it."""

    def __init__(self, taken: Iterable[str] = ()):
        self.taken: set[str] = set(taken)

    def claim(self, name: str, alternatives: Iterable[str] = ()) -> str:
        for cand in (name, *alternatives):
            if cand not in self.taken:
                self.taken.add(cand)
                return cand
        i = 2
        while f"{name}{i}" in self.taken:
            i += 1
        self.taken.add(f"{name}{i}")
        return f"{name}{i}"


# ----------------------------------------------------------------------------- effects


def entry_workflows(programs: Iterable[Program]) -> list[tuple[Program, WorkflowInfo]]:
    """Workflows declared in the named files (imported ones are not exposed)."""
    return [(p, wf) for p in programs for wf in p.workflows()]


#: modules whose nodes talk to the outside world
OPEN_WORLD_MODULES = {"std.http"}
#: std modules that stay on this machine (files, the local database, logs, pure helpers)
CLOSED_STD_MODULES = {"std.core", "std.file", "std.sql", "std.json", "std.text"}


def is_external(node: NodeInfo) -> bool:
    """Does this node reach beyond the run's own machine (MCP's "open world")?

    ``std.http`` always does. Other standard-library nodes do not (files, SQLite, logs,
    clocks). A user node does unless it is ``pure``: kflow cannot see what an
    implementation talks to, so a read or write of the user's own is assumed external.
    """
    mod = node.module.name
    if mod in OPEN_WORLD_MODULES:
        return True
    if node.module.is_std or mod.startswith("std."):
        return False
    return node.effect != "pure"


@dataclass(frozen=True)
class Effects:
    read_only: bool
    destructive: bool
    idempotent: bool
    open_world: bool


def called_nodes(wf: WorkflowInfo, program: Program) -> list[NodeInfo]:
    """The nodes a workflow calls as steps, through sub-workflow calls too."""
    out: list[NodeInfo] = []
    seen: set[int] = set()
    stack = [wf]
    while stack:
        cur = stack.pop()
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        for sub in A.walk(cur.decl.body):
            if isinstance(sub, A.Call):
                t = program.calls.get(sub)
                if t is None:
                    continue
                if t.kind == "node" and all(n is not t.target for n in out):
                    out.append(t.target)
                elif t.kind == "workflow":
                    stack.append(t.target)
    return out


def effect_summary(wf: WorkflowInfo, program: Program | None = None) -> Effects:
    """MCP tool hints from the nodes a workflow can reach (sub-workflows included).

    A node reachable only as another's ``@compensate`` does not count: it runs only to
    undo a write that already counts.
    """
    nodes = list(wf.reachable_nodes)
    if program is not None:
        called = called_nodes(wf, program)
        undo = {id(n.compensate) for n in nodes if n.compensate is not None}
        nodes = [n for n in nodes if id(n) not in undo or any(c is n for c in called)]
        nodes += [c for c in called if all(c is not n for n in nodes)]
    writes = [n for n in nodes if n.effect == "write"]
    return Effects(
        read_only=not writes,
        destructive=any(n.compensate is None for n in writes),
        idempotent=all(n.idempotent for n in writes),
        open_world=any(is_external(n) for n in nodes),
    )


def dumps(doc: Any) -> str:
    """The one JSON layout every emitter prints: 2-space indent, UTF-8, trailing newline."""
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
