"""Per-type specialised forms of :func:`types.check_value` and :func:`types.to_json`.

The generic functions walk a type with ``isinstance`` chains on every call: fine for a
CLI run, a measurable share of a served request (every input and result is checked and
encoded). As pydantic-core does, each type is turned once into a tree of small closures.

A compiled checker handles the common representations only (an ``int`` for ``int``, a
``dict`` for a record...). Anything else — a mismatch, or a value needing conversion (a
duration literal, base64 bytes, ``3.0`` for an ``int``) — makes it fall back to the
generic function, so results and error messages are exactly the generic ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import types as T


class _Miss(Exception):
    """The fast path does not handle this value: ask the generic function."""


_CACHE: dict[tuple[int, Any], tuple[Any, Any]] = {}
_CACHE_MAX = 4096


def cached(obj: Any, kind: Any, build: Callable[[], Any]) -> Any:
    """``build()`` once per (object, kind): types here, workflows' input checks in the
    runtime. Keyed by identity (hashing a deep record type costs more than checking)."""
    key = (id(obj), kind)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is obj:
        return hit[1]
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    value = build()
    _CACHE[key] = (obj, value)  # the entry keeps ``obj`` alive, so its id is not reused
    return value


def checker(t: T.Type, *, from_json: bool = False) -> Callable[[Any, str], Any]:
    """``fn(value, path)`` equal to ``check_value(t, value, path, from_json=...)``."""

    def build() -> Callable[[Any, str], Any]:
        fast = _fast_check(t)

        def check(v: Any, path: str = "") -> Any:
            try:
                return fast(v)
            except _Miss:
                return T.check_value(t, v, path, from_json=from_json)
        return check
    return cached(t, 1 if from_json else 0, build)


def encoder(t: T.Type | None) -> Callable[[Any], Any]:
    """``fn(value)`` equal to ``to_json(t, value)``."""
    if t is None:
        return lambda v: T.to_json(None, v)

    def build() -> Callable[[Any], Any]:
        fast = _fast_encode(t)

        def encode(v: Any) -> Any:
            try:
                return fast(v)
            except _Miss:
                return T.to_json(t, v)
        return encode
    return cached(t, 2, build)


def _identity(v: Any) -> Any:
    return v


def _miss(v: Any) -> Any:
    raise _Miss


def _fast_check(t: T.Type) -> Callable[[Any], Any]:
    if isinstance(t, (T.Unknown, T.ErrorT)) or t == T.JSON:
        return _identity
    if isinstance(t, T.Optional):
        inner = _fast_check(t.inner)

        def optional(v: Any) -> Any:
            return None if v is None else inner(v)
        return optional
    if isinstance(t, T.Prim):
        want = {"int": int, "str": str, "bool": bool}.get(t.name)
        if want is not None:
            def prim(v: Any) -> Any:
                if type(v) is want:
                    return v
                raise _Miss
            return prim
        if t.name == "float":
            def float_(v: Any) -> Any:
                tv = type(v)
                if tv is float:
                    return v
                if tv is int:
                    return float(v)
                raise _Miss
            return float_
        if t.name == "null":
            def null(v: Any) -> Any:
                if v is None:
                    return None
                raise _Miss
            return null
        return _miss  # duration, bytes: conversions the generic function knows
    if isinstance(t, T.EnumT):
        members = frozenset(t.members)

        def enum(v: Any) -> Any:
            if type(v) is str and v in members:
                return v
            raise _Miss
        return enum
    if isinstance(t, T.ListT):
        elem = _fast_check(t.elem)
        if elem is _identity:
            def list_any(v: Any) -> Any:
                if type(v) is list:
                    return list(v)
                raise _Miss
            return list_any

        def list_(v: Any) -> Any:
            if type(v) is list:
                return [elem(x) for x in v]
            raise _Miss
        return list_
    if isinstance(t, T.MapT):
        elem = _fast_check(t.elem)

        def map_(v: Any) -> Any:
            if type(v) is dict:
                out = {}
                for k, x in v.items():
                    if type(k) is not str:
                        raise _Miss
                    out[k] = elem(x)
                return out
            raise _Miss
        return map_
    if isinstance(t, T.RecordT):
        fields = []
        for f in t.fields:
            if f.has_default:
                how = 1
            elif T.is_optional(f.type):
                how = 2
            else:
                how = 0
            fields.append((f.name, _fast_check(f.type), how, f.default))
        fields_t = tuple(fields)

        def record(v: Any) -> Any:
            if type(v) is not dict:
                raise _Miss
            out = dict(v)
            for name, check, how, default in fields_t:
                if name in v:
                    out[name] = check(v[name])
                elif how == 1:
                    out[name] = T._copy(default)
                elif how == 2:
                    out[name] = None
                else:
                    raise _Miss
            return out
        return record
    return _miss


_SCALARS = frozenset((int, float, str, bool, type(None)))


def _fast_encode(t: T.Type) -> Callable[[Any], Any]:
    inner = T.strip_optional(t)
    if isinstance(inner, T.RecordT):
        by_name = {f.name: _fast_encode(f.type) for f in inner.fields}

        def record(v: Any) -> Any:
            tv = type(v)
            if tv is dict:
                out = {}
                for k, x in v.items():
                    enc = by_name.get(k)
                    out[k] = enc(x) if enc is not None else _generic(x)
                return out
            if v is None:
                return None
            raise _Miss
        return record
    if isinstance(inner, T.ListT):
        elem = _fast_encode(inner.elem)

        def list_(v: Any) -> Any:
            tv = type(v)
            if tv is list or tv is tuple:
                return [elem(x) for x in v]
            if v is None:
                return None
            raise _Miss
        return list_
    if isinstance(inner, T.MapT):
        elem = _fast_encode(inner.elem)

        def map_(v: Any) -> Any:
            if type(v) is dict:
                return {k if type(k) is str else str(k): elem(x) for k, x in v.items()}
            if v is None:
                return None
            raise _Miss
        return map_
    if inner == T.DURATION:
        return _miss  # milliseconds → a duration literal: the generic function

    def scalar(v: Any) -> Any:
        if type(v) in _SCALARS:
            return v
        raise _Miss
    return scalar


def _generic(v: Any) -> Any:
    if type(v) in _SCALARS:
        return v
    return T.to_json(None, v)
