"""kflow's static types, assignability (§3), and checking runtime values against them.

Types are small frozen dataclasses, compared structurally. ``UNKNOWN`` is the type of an
expression that already produced an error: it is assignable both ways, so one mistake
gives one diagnostic instead of a cascade.

Runtime values: ``int``/``float``/``str``/``bool`` as in Python, ``null`` is ``None``,
``duration`` an ``int`` of milliseconds, ``bytes`` Python ``bytes``, an enum value the
member name ``str``, records and maps ``dict``, lists ``list``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any


class Type:
    __slots__ = ()

    def show(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def __str__(self) -> str:
        return self.show()


@dataclass(frozen=True, slots=True)
class Prim(Type):
    name: str  # int float str bool bytes duration null json

    def show(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Unknown(Type):
    def show(self) -> str:
        return "{unknown}"


@dataclass(frozen=True, slots=True)
class Optional(Type):
    inner: Type

    def show(self) -> str:
        return f"{self.inner.show()}?"


@dataclass(frozen=True, slots=True)
class ListT(Type):
    elem: Type

    def show(self) -> str:
        return f"list[{self.elem.show()}]"


@dataclass(frozen=True, slots=True)
class MapT(Type):
    elem: Type

    def show(self) -> str:
        return f"map[{self.elem.show()}]"


@dataclass(frozen=True, slots=True)
class FieldT:
    name: str
    type: Type
    has_default: bool = False
    default: Any = None  # the default's runtime value when it is a constant


@dataclass(frozen=True, slots=True)
class RecordT(Type):
    fields: tuple[FieldT, ...]
    name: str | None = None  # the declared name, for messages and schemas

    def field(self, name: str) -> FieldT | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    def show(self) -> str:
        if self.name:
            return self.name
        inner = ", ".join(f"{f.name}: {f.type.show()}" for f in self.fields)
        return "{" + inner + "}"


@dataclass(frozen=True, slots=True)
class EnumT(Type):
    name: str
    members: tuple[str, ...]
    qualname: str = ""

    def show(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class ErrorT(Type):
    """The type of `e` in `catch ... as e`: a record {kind, message, step}."""

    def show(self) -> str:
        return "Error"


INT = Prim("int")
FLOAT = Prim("float")
STR = Prim("str")
BOOL = Prim("bool")
BYTES = Prim("bytes")
DURATION = Prim("duration")
NULL = Prim("null")
JSON = Prim("json")
UNKNOWN = Unknown()
ERROR_RECORD = RecordT((FieldT("kind", STR), FieldT("message", STR), FieldT("step", STR)),
                       "Error")

PRIMITIVES = {p.name: p for p in (INT, FLOAT, STR, BOOL, BYTES, DURATION, NULL, JSON)}


def optional(t: Type) -> Type:
    if isinstance(t, (Optional, Unknown)) or t == NULL or t == JSON:
        return t
    return Optional(t)


def strip_optional(t: Type) -> Type:
    return t.inner if isinstance(t, Optional) else t


def is_optional(t: Type) -> bool:
    return isinstance(t, Optional) or t == NULL


def assignable(src: Type, dst: Type) -> bool:
    """Can a value of static type ``src`` be used where ``dst`` is expected (§3)?"""
    if src == dst or isinstance(src, Unknown) or isinstance(dst, Unknown):
        return True
    if dst == JSON:
        return True
    if isinstance(dst, Optional):
        if src == NULL:
            return True
        return assignable(strip_optional(src), dst.inner)
    if isinstance(src, Optional):
        return False
    if src == INT and dst == FLOAT:
        return True
    if isinstance(dst, ListT) and isinstance(src, ListT):
        return assignable(src.elem, dst.elem)
    if isinstance(dst, MapT) and isinstance(src, MapT):
        return assignable(src.elem, dst.elem)
    if isinstance(dst, RecordT) and isinstance(src, RecordT):
        return record_missing(src, dst) == [] and not record_mismatched(src, dst)
    if isinstance(dst, EnumT) and isinstance(src, EnumT):
        return src.qualname == dst.qualname and src.name == dst.name
    return False


def record_missing(src: RecordT, dst: RecordT) -> list[str]:
    """Fields ``dst`` requires (no default) that ``src`` lacks."""
    have = {f.name for f in src.fields}
    return [f.name for f in dst.fields if not f.has_default and f.name not in have]


def record_mismatched(src: RecordT, dst: RecordT) -> list[tuple[str, Type, Type]]:
    out = []
    for f in dst.fields:
        s = src.field(f.name)
        if s is not None and not assignable(s.type, f.type):
            out.append((f.name, f.type, s.type))
    return out


def unify(a: Type, b: Type) -> Type | None:
    """The common type of two branches (``if``/``??``/``try else``), or None."""
    if a == b:
        return a
    if isinstance(a, Unknown):
        return b
    if isinstance(b, Unknown):
        return a
    if a == NULL:
        return optional(b)
    if b == NULL:
        return optional(a)
    if isinstance(a, Optional) or isinstance(b, Optional):
        inner = unify(strip_optional(a), strip_optional(b))
        return optional(inner) if inner is not None else None
    if {a, b} == {INT, FLOAT}:
        return FLOAT
    if assignable(a, b):
        return b
    if assignable(b, a):
        return a
    if isinstance(a, ListT) and isinstance(b, ListT):
        e = unify(a.elem, b.elem)
        return ListT(e) if e is not None else None
    if a == JSON or b == JSON:
        return JSON
    return None


# ---------------------------------------------------------------------------- values


class ValueMismatch(Exception):
    """A runtime value does not match its declared type; ``path`` names where."""

    def __init__(self, path: str, expected: Type, found: Any):
        self.path, self.expected, self.found = path, expected, found
        where = f"`{path}`" if path else "the value"
        super().__init__(f"{where}: expected {expected.show()}, found {describe_value(found)}")


def describe_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"bool {str(v).lower()}"
    if isinstance(v, int):
        return f"int {v}"
    if isinstance(v, float):
        return f"float {v}"
    if isinstance(v, str):
        s = v if len(v) <= 40 else v[:37] + "..."
        return f"str {s!r}".replace("'", '"')
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def _join(path: str, part: str) -> str:
    if part.startswith("["):
        return path + part
    return f"{path}.{part}" if path else part


def check_value(t: Type, v: Any, path: str = "", *, from_json: bool = False,
                fill_defaults: bool = True) -> Any:
    """Return ``v`` as a runtime value of type ``t`` or raise :class:`ValueMismatch`.

    With ``from_json`` the value came from JSON (inputs, signals, the journal): durations
    arrive as literal strings and bytes as base64. Record fields with defaults are filled.
    """
    if isinstance(t, Unknown) or t == JSON:
        return v
    if isinstance(t, Optional):
        if v is None:
            return None
        return check_value(t.inner, v, path, from_json=from_json, fill_defaults=fill_defaults)
    if isinstance(t, Prim):
        n = t.name
        if n == "int":
            if isinstance(v, int) and not isinstance(v, bool):
                return v
            if isinstance(v, float) and v.is_integer() and from_json:
                return int(v)
        elif n == "float":
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v) if isinstance(v, int) else v
        elif n == "str":
            if isinstance(v, str):
                return v
        elif n == "bool":
            if isinstance(v, bool):
                return v
        elif n == "null":
            if v is None:
                return None
        elif n == "duration":
            if isinstance(v, int) and not isinstance(v, bool) and not from_json:
                return v
            if isinstance(v, str):
                from ..durations import parse_duration
                try:
                    return parse_duration(v)
                except ValueError:
                    pass
        elif n == "bytes":
            if isinstance(v, (bytes, bytearray)):
                return bytes(v)
            if isinstance(v, str) and from_json:
                try:
                    return base64.b64decode(v, validate=True)
                except ValueError:
                    pass
        raise ValueMismatch(path, t, v)
    if isinstance(t, EnumT):
        if isinstance(v, str) and v in t.members:
            return v
        raise ValueMismatch(path, t, v)
    if isinstance(t, ListT):
        if not isinstance(v, (list, tuple)):
            raise ValueMismatch(path, t, v)
        return [check_value(t.elem, x, _join(path, f"[{i}]"), from_json=from_json,
                            fill_defaults=fill_defaults) for i, x in enumerate(v)]
    if isinstance(t, MapT):
        if not isinstance(v, dict):
            raise ValueMismatch(path, t, v)
        return {str(k): check_value(t.elem, x, _join(path, str(k)), from_json=from_json,
                                    fill_defaults=fill_defaults) for k, x in v.items()}
    if isinstance(t, RecordT):
        if not isinstance(v, dict):
            raise ValueMismatch(path, t, v)
        out = dict(v)
        for f in t.fields:
            if f.name in v:
                out[f.name] = check_value(f.type, v[f.name], _join(path, f.name),
                                          from_json=from_json, fill_defaults=fill_defaults)
            elif f.has_default:
                if fill_defaults:
                    out[f.name] = _copy(f.default)
            elif is_optional(f.type):
                out[f.name] = None
            else:
                raise MissingField(_join(path, f.name), f.type)
        return out
    if isinstance(t, ErrorT):
        return v
    raise ValueMismatch(path, t, v)


class MissingField(ValueMismatch):
    def __init__(self, path: str, expected: Type):
        self.path, self.expected, self.found = path, expected, None
        Exception.__init__(self, f"`{path}`: missing field of type {expected.show()}")


def _copy(v: Any) -> Any:
    if isinstance(v, list):
        return [_copy(x) for x in v]
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    return v


def to_json(t: Type | None, v: Any) -> Any:
    """A runtime value → its JSON form (durations as literals, bytes as base64)."""
    if v is None:
        return None
    if isinstance(v, bool) or isinstance(v, str):
        return v
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode("ascii")
    inner = strip_optional(t) if t is not None else None
    if isinstance(v, int) and inner == DURATION:
        from ..durations import format_duration
        return format_duration(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, (list, tuple)):
        et = inner.elem if isinstance(inner, ListT) else None
        return [to_json(et, x) for x in v]
    if isinstance(v, dict):
        if isinstance(inner, RecordT):
            out = {}
            for k, x in v.items():
                f = inner.field(k)
                out[k] = to_json(f.type if f else None, x)
            return out
        et = inner.elem if isinstance(inner, MapT) else None
        return {str(k): to_json(et, x) for k, x in v.items()}
    return v
