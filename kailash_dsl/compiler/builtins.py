"""The builtin functions of §10: their static signatures and pure implementations.

The checker calls :func:`check_builtin` to type a call; :data:`IMPLS` holds Python
implementations of the deterministic builtins (the checker uses them to fold constants;
the runtime may reuse them). Builtins take positional arguments only, and their names
are not reserved: a binding or a declaration with the same name shadows them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from . import types as T

#: name -> (min args, max args, parameter names for messages)
SIGNATURES: dict[str, tuple[int, int, tuple[str, ...]]] = {
    "len": (1, 1, ("x",)),
    "str": (1, 1, ("x",)),
    "int": (1, 1, ("x",)),
    "float": (1, 1, ("x",)),
    "bool": (1, 1, ("x",)),
    "lower": (1, 1, ("s",)),
    "upper": (1, 1, ("s",)),
    "trim": (1, 1, ("s",)),
    "split": (2, 2, ("s", "sep")),
    "join": (2, 2, ("items", "sep")),
    "contains": (2, 2, ("x", "item")),
    "keys": (1, 1, ("m",)),
    "values": (1, 1, ("m",)),
    "sum": (1, 1, ("xs",)),
    "min": (1, 1, ("xs",)),
    "max": (1, 1, ("xs",)),
    "abs": (1, 1, ("n",)),
    "round": (1, 2, ("x", "digits")),
    "range": (1, 1, ("n",)),
    "sorted": (1, 1, ("xs",)),
    "uuid": (0, 0, ()),
    "now": (0, 0, ()),
    "random": (0, 0, ()),
    "env": (1, 1, ("name",)),
    "secret": (1, 1, ("name",)),
}

BUILTIN_NAMES = frozenset(SIGNATURES)
#: results depend on the outside world: journaled (§7), never constant-folded
NONDETERMINISTIC = frozenset({"uuid", "now", "random", "env", "secret"})

_NUM = (T.INT, T.FLOAT)
_ORDERED = (T.INT, T.FLOAT, T.STR, T.DURATION)


def _is(t: T.Type, *allowed: T.Type) -> bool:
    return isinstance(t, T.Unknown) or t in allowed


def check_builtin(name: str, args: list, types: list[T.Type], bad) -> T.Type:
    """The result type of ``name(args...)``; ``bad(i, expected_text, help=None)`` reports
    argument ``i`` (0-based) as mismatched. Arity is checked by the caller."""
    a = types

    def want(i: int, ok: bool, expected: str, help: str | None = None) -> bool:
        if not ok and not isinstance(a[i], T.Unknown):
            bad(i, expected, help)
            return False
        return True

    def opt_help(i: int) -> str | None:
        if isinstance(a[i], T.Optional):
            return "the value may be null; use `x ?? default` or check `x != null` first"
        return None

    if name == "len":
        want(0, _is(a[0], T.STR, T.JSON) or isinstance(a[0], (T.ListT, T.MapT)),
             "`str`, a list or a map", opt_help(0))
        return T.INT
    if name == "str":
        return T.STR
    if name == "int":
        want(0, _is(a[0], T.INT, T.FLOAT, T.STR, T.BOOL, T.JSON, T.DURATION),
             "a number, `str` or `bool`", opt_help(0))
        return T.INT
    if name == "float":
        want(0, _is(a[0], T.INT, T.FLOAT, T.STR, T.JSON), "a number or `str`", opt_help(0))
        return T.FLOAT
    if name == "bool":
        return T.BOOL
    if name in ("lower", "upper", "trim"):
        want(0, _is(a[0], T.STR, T.JSON), "`str`", opt_help(0))
        return T.STR
    if name == "split":
        want(0, _is(a[0], T.STR, T.JSON), "`str`", opt_help(0))
        want(1, _is(a[1], T.STR, T.JSON), "`str`", opt_help(1))
        return T.ListT(T.STR)
    if name == "join":
        want(0, _is(a[0], T.JSON) or (isinstance(a[0], T.ListT)
                                     and T.assignable(a[0].elem, T.STR)),
             "`list[str]`", "convert the items first: `[str(x) for x in xs]`"
             if isinstance(a[0], T.ListT) else opt_help(0))
        want(1, _is(a[1], T.STR, T.JSON), "`str`", opt_help(1))
        return T.STR
    if name == "contains":
        c, item = a
        if isinstance(c, T.ListT):
            want(1, T.assignable(item, c.elem) or T.assignable(c.elem, item),
                 f"`{c.elem.show()}` (the list's item type)")
        elif _is(c, T.STR) or isinstance(c, T.MapT):
            want(1, _is(item, T.STR, T.JSON), "`str`")
        else:
            want(0, _is(c, T.JSON), "`str`, a list or a map", opt_help(0))
        return T.BOOL
    if name == "keys":
        want(0, _is(a[0], T.JSON) or isinstance(a[0], (T.MapT, T.RecordT)), "a map",
             opt_help(0))
        return T.ListT(T.STR)
    if name == "values":
        if isinstance(a[0], T.MapT):
            return T.ListT(a[0].elem)
        want(0, _is(a[0], T.JSON), "a map", opt_help(0))
        return T.ListT(T.JSON) if a[0] == T.JSON else T.ListT(T.UNKNOWN)
    if name == "sum":
        if isinstance(a[0], T.ListT):
            e = a[0].elem
            if e in (T.INT, T.FLOAT, T.DURATION, T.JSON) or isinstance(e, T.Unknown):
                return T.INT if isinstance(e, T.Unknown) else e
            want(0, False, "a list of numbers", opt_help(0))
            return T.UNKNOWN
        want(0, _is(a[0], T.JSON), "a list of numbers", opt_help(0))
        return T.JSON if a[0] == T.JSON else T.UNKNOWN
    if name in ("min", "max", "sorted"):
        if isinstance(a[0], T.ListT):
            e = a[0].elem
            ok = e in _ORDERED or e in (T.JSON, T.BOOL) or isinstance(e, (T.Unknown, T.EnumT))
            if not want(0, ok, "a list of numbers, strings or durations",
                        "only numbers, strings and durations can be ordered"):
                return T.UNKNOWN
            return a[0] if name == "sorted" else e
        want(0, _is(a[0], T.JSON), "a list", opt_help(0))
        return T.UNKNOWN if a[0] != T.JSON else (T.ListT(T.JSON) if name == "sorted" else T.JSON)
    if name == "abs":
        want(0, _is(a[0], T.INT, T.FLOAT, T.DURATION, T.JSON), "a number", opt_help(0))
        return a[0] if a[0] in (T.INT, T.FLOAT, T.DURATION) else (
            T.FLOAT if a[0] == T.JSON else T.UNKNOWN)
    if name == "round":
        want(0, _is(a[0], T.INT, T.FLOAT, T.JSON), "a number", opt_help(0))
        if len(a) == 2:
            want(1, _is(a[1], T.INT), "`int`", opt_help(1))
            return T.FLOAT
        return T.INT
    if name == "range":
        want(0, _is(a[0], T.INT), "`int`", opt_help(0))
        return T.ListT(T.INT)
    if name in ("uuid", "now"):
        return T.STR
    if name == "random":
        return T.FLOAT
    if name in ("env", "secret"):
        want(0, _is(a[0], T.STR), "`str`", opt_help(0))
        return T.STR
    raise KeyError(name)  # pragma: no cover - SIGNATURES and this function agree


# ---------------------------------------------------------------------------- values


def format_value(v: Any) -> str:
    """A runtime value as text (string interpolation and ``str(x)``): strings as they
    are, ``true``/``false``/``null``, lists and records as compact JSON."""
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v, separators=(", ", ": "), ensure_ascii=False, default=str)


def _round(x, digits=None):
    if digits is None:
        return math.floor(x + 0.5) if isinstance(x, float) else int(x)
    return float(round(x, digits))


def _int(x):
    if isinstance(x, str):
        return int(x.strip())
    return int(x)


def _len(x):
    return len(x)


IMPLS: dict[str, Callable[..., Any]] = {
    "len": _len,
    "str": format_value,
    "int": _int,
    "float": float,
    "bool": lambda x: bool(x),
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "trim": lambda s: s.strip(),
    "split": lambda s, sep: s.split(sep),
    "join": lambda items, sep: sep.join(items),
    "contains": lambda x, item: item in x,
    "keys": lambda m: list(m.keys()),
    "values": lambda m: list(m.values()),
    "sum": lambda xs: sum(xs),
    "min": lambda xs: min(xs),
    "max": lambda xs: max(xs),
    "abs": abs,
    "round": _round,
    "range": lambda n: list(range(n)),
    "sorted": lambda xs: sorted(xs),
}
