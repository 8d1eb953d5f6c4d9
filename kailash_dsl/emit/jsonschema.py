"""kflow types → JSON Schema 2020-12 (also the schema dialect of OpenAPI 3.1 and MCP).

The mapping (docs/emit.md has the table):

- ``int`` → integer, ``float`` → number, ``str`` → string, ``bool`` → boolean,
  ``null`` → null, ``json`` → ``{}`` (anything), ``bytes`` → string with
  ``contentEncoding: base64``, ``duration`` → string matching ``^[0-9]+(ms|s|m|h|d)$``;
- ``T?`` → ``type: [T, "null"]``, or ``anyOf: [T, {type: null}]`` when ``T`` is a ``$ref``;
- ``list[T]`` → array with ``items``; ``map[T]`` → object with ``additionalProperties``;
- records → objects with ``properties`` and ``required`` (the fields that have no default
  and are not optional: an omitted optional field reads as null, as ``kflow run`` does);
  constant defaults are carried as ``default``, doc comments as ``description``;
- enums → string ``enum`` of the member names;
- declared records and enums live under ``$defs`` (``components/schemas`` in OpenAPI) and
  are referenced with ``$ref``.

A workflow's input is an object of its parameters with ``additionalProperties: false``
(``kflow run`` refuses unknown parameters); records nested in it are structural, so they
accept extra fields, like values coming from elsewhere (§3).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..compiler import types as T
from ..compiler.program import Program, WorkflowInfo
from .common import (
    NOT_CONST,
    NamedType,
    Namer,
    TypeIndex,
    const_value,
    decl_field,
    doc_summary,
    dumps,
    field_default,
    is_named,
    json_default,
    type_key,
)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
DURATION_PATTERN = "^[0-9]+(ms|s|m|h|d)$"


class SchemaBuilder:
    """Builds schemas for types, collecting named ones into one ``$defs`` table.

    Call :meth:`collect` on every root type first (so colliding names are qualified
    consistently), then :meth:`schema` / :meth:`input_schema` / :meth:`output_schema`.
    """

    def __init__(self, programs: Iterable[Program] = (), ref_base: str = "#/$defs/",
                 namer: Namer | None = None):
        self.index = TypeIndex(programs)
        self.ref_base = ref_base
        self.namer = namer or Namer()
        self.defs: dict[str, dict] = {}
        self._collected: dict[str, tuple[T.Type, NamedType | None]] = {}
        self._names: dict[str, str] = {}

    # -- naming

    def collect(self, t: T.Type) -> None:
        """Note every named type reachable from ``t`` (in first-seen order)."""
        stack = [t]
        while stack:
            cur = stack.pop()
            if isinstance(cur, (T.Optional, T.ListT, T.MapT)):
                stack.append(cur.inner if isinstance(cur, T.Optional) else cur.elem)
                continue
            if is_named(cur):
                key = type_key(cur)
                if key in self._collected:
                    continue
                self._collected[key] = (cur, self.index.lookup(cur))
            if isinstance(cur, T.RecordT):
                stack.extend(reversed([f.type for f in cur.fields]))

    def _assign_names(self) -> None:
        short: dict[str, int] = {}
        for key, (t, info) in self._collected.items():
            if key in self._names:
                continue
            short[_short_name(t, info)] = short.get(_short_name(t, info), 0) + 1
        for key, (t, info) in self._collected.items():
            if key in self._names:
                continue
            name = _short_name(t, info)
            if short.get(name, 0) > 1 or name in self.namer.taken:
                qual = _qual_name(t, info)
                self._names[key] = self.namer.claim(qual)
            else:
                self._names[key] = self.namer.claim(name)

    def name_of(self, t: T.Type) -> str:
        key = type_key(t)
        if key not in self._names:
            self.collect(t)
            self._assign_names()
        return self._names[key]

    def ref(self, name: str) -> dict:
        return {"$ref": self.ref_base + name}

    # -- schemas

    def schema(self, t: T.Type) -> dict:
        """The schema of ``t``; named types become ``$ref``s into :attr:`defs`."""
        if isinstance(t, T.Prim):
            return prim_schema(t)
        if isinstance(t, T.Unknown):
            return {}
        if isinstance(t, T.Optional):
            return nullable(self.schema(t.inner))
        if isinstance(t, T.ListT):
            return {"type": "array", "items": self.schema(t.elem)}
        if isinstance(t, T.MapT):
            return {"type": "object", "additionalProperties": self.schema(t.elem)}
        if isinstance(t, T.ErrorT):
            return self.record_schema(T.ERROR_RECORD)
        if is_named(t):
            name = self.name_of(t)
            if name not in self.defs:
                self.defs[name] = {}  # placeholder: recursion stops here
                self.defs[name] = self.named_schema(t)
            return self.ref(name)
        if isinstance(t, T.RecordT):
            return self.record_schema(t)
        return {}

    def named_schema(self, t: T.Type) -> dict:
        """The definition (not a reference) of a declared record or enum."""
        info = self.index.lookup(t)
        doc = info.doc if info else None
        if isinstance(t, T.EnumT):
            out: dict[str, Any] = {"title": t.name}
            if doc:
                out["description"] = doc
            out["type"] = "string"
            out["enum"] = list(t.members)
            return out
        assert isinstance(t, T.RecordT)
        return self.record_schema(t, title=t.name, doc=doc,
                                  decl=info.decl if info else None,
                                  program=info.program if info else None)

    def record_schema(self, t: T.RecordT, *, title: str | None = None, doc: str | None = None,
                      decl: Any = None, program: Program | None = None,
                      closed: bool = False) -> dict:
        out: dict[str, Any] = {}
        if title:
            out["title"] = title
        if doc:
            out["description"] = doc
        out["type"] = "object"
        props: dict[str, Any] = {}
        required: list[str] = []
        for f in t.fields:
            s = dict(self.schema(f.type))
            d = field_default(f, decl_field(decl, f.name), program)
            if d is not NOT_CONST:
                s["default"] = json_default(f.type, d)
            props[f.name] = s
            if not f.has_default and not T.is_optional(f.type) and f.type != T.JSON:
                required.append(f.name)
        out["properties"] = props
        if required:
            out["required"] = required
        if closed:
            out["additionalProperties"] = False
        return out

    # -- workflows

    def input_type(self, wf: WorkflowInfo) -> T.RecordT:
        return T.RecordT(tuple(T.FieldT(p.name, p.type, p.has_default) for p in wf.params))

    def input_schema(self, wf: WorkflowInfo, program: Program | None = None, *,
                     title: str | None = None) -> dict:
        """The object of the workflow's parameters: closed, with constant defaults."""
        out: dict[str, Any] = {}
        if title:
            out["title"] = title
        if wf.doc:
            out["description"] = wf.doc
        out["type"] = "object"
        props: dict[str, Any] = {}
        required: list[str] = []
        for p in wf.params:
            s = dict(self.schema(p.type))
            if p.has_default:
                v = const_value(p.default, program)
                if v is not NOT_CONST:
                    s["default"] = json_default(p.type, v)
            props[p.name] = s
            if not p.has_default and not T.is_optional(p.type) and p.type != T.JSON:
                required.append(p.name)
        out["properties"] = props
        if required:
            out["required"] = required
        out["additionalProperties"] = False
        return out

    def output_schema(self, wf: WorkflowInfo, *, title: str | None = None) -> dict:
        """The schema of the workflow's result (a ``$ref`` for a declared type)."""
        s = self.schema(wf.result)
        if title and "$ref" not in s:
            s = {"title": title, **s}
        return s

    def collect_workflow(self, wf: WorkflowInfo) -> None:
        for p in wf.params:
            self.collect(p.type)
        self.collect(wf.result)


def _short_name(t: T.Type, info: NamedType | None) -> str:
    if info is not None:
        return info.name
    return t.name if isinstance(t, (T.RecordT, T.EnumT)) and t.name else "Record"


def _qual_name(t: T.Type, info: NamedType | None) -> str:
    if info is not None:
        return f"{info.module}.{info.name}"
    if isinstance(t, T.EnumT) and t.qualname:
        return t.qualname
    return _short_name(t, info)


def prim_schema(t: T.Prim) -> dict:
    n = t.name
    if n == "int":
        return {"type": "integer"}
    if n == "float":
        return {"type": "number"}
    if n == "str":
        return {"type": "string"}
    if n == "bool":
        return {"type": "boolean"}
    if n == "null":
        return {"type": "null"}
    if n == "bytes":
        return {"type": "string", "contentEncoding": "base64"}
    if n == "duration":
        return {"type": "string", "pattern": DURATION_PATTERN}
    return {}  # json


def nullable(s: dict) -> dict:
    """``T?``: add null to ``s``."""
    if not s:
        return {}  # json already admits null
    typ = s.get("type")
    if "$ref" in s or typ is None:
        if s.get("anyOf") and {"type": "null"} in s["anyOf"]:
            return s
        return {"anyOf": [s, {"type": "null"}]}
    out = dict(s)
    if isinstance(typ, list):
        if "null" not in typ:
            out["type"] = [*typ, "null"]
    elif typ != "null":
        out["type"] = [typ, "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


# ----------------------------------------------------------------------------- document


def build_document(programs: list[Program]) -> dict:
    """One JSON Schema document: every declared type and every workflow's input/output.

    Declared types of the named files (and the records and enums they use) are under
    ``$defs`` by name; each workflow adds ``<Workflow>Input`` and ``<Workflow>Output``.
    An alias (``type Sku = str``) gets a definition of its own, but uses of it are
    written out in place: the checker resolves aliases away.
    """
    b = SchemaBuilder(programs)
    wfs = [(p, wf) for p in programs for wf in p.workflows()]
    for p in programs:
        for sym in declared_types(p):
            b.collect(sym.type)
    for _, wf in wfs:
        b.collect_workflow(wf)
    b._assign_names()
    aliases: list[tuple[str, dict]] = []
    for p in programs:
        for sym in declared_types(p):
            if is_named(sym.type) and sym.type.name == sym.name:
                b.schema(sym.type)
                continue
            name = b.namer.claim(sym.name, [f"{p.entry.name}.{sym.name}"])
            body: dict[str, Any] = {"title": sym.name}
            if sym.doc:
                body["description"] = sym.doc
            body.update(b.schema(sym.type))
            aliases.append((name, body))
    wf_defs: dict[str, dict] = {}
    for p, wf in wfs:
        in_name = b.namer.claim(f"{wf.name}Input")
        out_name = b.namer.claim(f"{wf.name}Output")
        wf_defs[in_name] = b.input_schema(wf, p, title=f"{wf.name} input")
        wf_defs[out_name] = {"title": f"{wf.name} output", **b.output_schema(wf)}
    doc: dict[str, Any] = {"$schema": DIALECT}
    names = [p.entry.name for p in programs]
    doc["title"] = ", ".join(names)
    doc["description"] = ("Types, workflow inputs and workflow outputs of the kflow "
                          "module" + ("s " if len(names) > 1 else " ") + ", ".join(names)
                          + ". Generated by `kflow emit jsonschema`.")
    doc["$defs"] = {**b.defs, **dict(aliases), **wf_defs}
    return doc


def declared_types(program: Program) -> list:
    """Types and enums declared in the entry file, in source order."""
    from ..compiler.program import EnumInfo, TypeInfo

    mod = program.entry
    return [sym for sym in mod.scope.values()
            if isinstance(sym, (TypeInfo, EnumInfo)) and sym.module is mod]


def emit(programs: list[Program]) -> str:
    return dumps(build_document(programs))


__all__ = [
    "DIALECT",
    "DURATION_PATTERN",
    "SchemaBuilder",
    "build_document",
    "doc_summary",
    "emit",
    "nullable",
    "prim_schema",
]
