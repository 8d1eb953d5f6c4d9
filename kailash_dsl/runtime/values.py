"""Runtime helpers that compiled expressions call as ``R.<name>`` (see compiler/exprs.py).

Builtins are Python-like (§10). Errors raised here are :class:`KflowError` with the
kinds of §9 (``IndexError``, ``TypeError``...), so a bad index fails the step the way
users expect instead of leaking a Python traceback.
"""

from __future__ import annotations

import json
import math
from typing import Any


class KflowError(Exception):
    """A run-time failure with a kflow error kind (§9)."""

    def __init__(self, kind: str, message: str, step: str = "", where: str = "") -> None:
        super().__init__(message)
        self.kind, self.message, self.step = kind, message, step
        #: "file.kflow:line" of the statement that failed, for people (not in the JSON)
        self.where = where

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "step": self.step}

    def __str__(self) -> str:
        return self.message


def text(v: Any) -> str:
    """How a value reads inside `"${...}"` and `str(x)`."""
    if isinstance(v, str):
        return v
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v) and abs(v) < 1e16:
            return f"{v:.1f}"
        return repr(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(", ", ": "), ensure_ascii=False, default=str)
    if isinstance(v, bytes):
        import base64
        return base64.b64encode(v).decode()
    return str(v)


def opt_field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else None


def index(obj: Any, i: Any) -> Any:
    if isinstance(obj, dict):
        try:
            return obj[i]
        except KeyError:
            raise KflowError("IndexError", f"key {text(i)!r} not in map") from None
    if isinstance(obj, (list, str)):
        try:
            if isinstance(i, bool) or not isinstance(i, int):
                raise KflowError("TypeError", f"index must be an int, found {text(i)}")
            return obj[i]
        except IndexError:
            raise KflowError("IndexError",
                             f"index {i} out of range for length {len(obj)}") from None
    raise KflowError("TypeError", f"cannot index {type(obj).__name__}")


def contains(container: Any, item: Any) -> bool:
    if isinstance(container, dict):
        return item in container
    if isinstance(container, str):
        return isinstance(item, str) and item in container
    if isinstance(container, list):
        return any(eq(x, item) for x in container)
    return False


def eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def div(a: Any, b: Any) -> float:
    if b == 0:
        raise KflowError("ArithmeticError", "division by zero")
    return a / b


def floordiv(a: Any, b: Any) -> Any:
    if b == 0:
        raise KflowError("ArithmeticError", "division by zero")
    return a // b


def mod(a: Any, b: Any) -> Any:
    if b == 0:
        raise KflowError("ArithmeticError", "modulo by zero")
    return a % b


def iterate(xs: Any):
    if isinstance(xs, dict):
        return list(xs.keys())
    if xs is None:
        raise KflowError("TypeError", "cannot iterate over null")
    return xs


def nondet(frame: Any, site: str, n: int, name: str, args: list) -> Any:
    """uuid()/now()/random()/env()/secret(): journaled so a resumed run sees the same."""
    return frame.run.nondet(frame.prefix + site, n, name, args)


# ----------------------------------------------------------------------------- builtins

def b_len(x: Any) -> int:
    if x is None:
        raise KflowError("TypeError", "len() of null")
    return len(x)


def dur_text(v: Any) -> str:
    """A duration inside `"${...}"` and `str(x)`: its literal (`"90s"`), as in JSON."""
    if v is None:
        return "null"
    from ..durations import format_duration

    return format_duration(v)


def b_str(x: Any) -> str:
    return text(x)


def b_int(x: Any) -> int:
    try:
        if isinstance(x, str):
            return int(x.strip().replace("_", ""))
        return int(x)
    except (ValueError, TypeError, OverflowError):
        raise KflowError("TypeError", f"cannot convert {text(x)!r} to int") from None


def b_float(x: Any) -> float:
    try:
        return float(x)
    except (ValueError, TypeError):
        raise KflowError("TypeError", f"cannot convert {text(x)!r} to float") from None


def b_bool(x: Any) -> bool:
    return bool(x)


def b_lower(s: str) -> str:
    return s.lower()


def b_upper(s: str) -> str:
    return s.upper()


def b_trim(s: str) -> str:
    return s.strip()


def b_split(s: str, sep: str | None = None) -> list:
    return s.split(sep) if sep not in (None, "") else s.split()


def b_join(items: list, sep: str = "") -> str:
    return sep.join(text(x) for x in items)


def b_contains(x: Any, item: Any) -> bool:
    return contains(x, item)


def b_keys(m: dict) -> list:
    return list(m.keys())


def b_values(m: dict) -> list:
    return list(m.values())


def b_sum(xs: list) -> Any:
    return sum(xs)


def b_min(xs: Any, *rest: Any) -> Any:
    if rest:
        return min([xs, *rest])
    if not xs:
        raise KflowError("IndexError", "min() of an empty list")
    return min(xs)


def b_max(xs: Any, *rest: Any) -> Any:
    if rest:
        return max([xs, *rest])
    if not xs:
        raise KflowError("IndexError", "max() of an empty list")
    return max(xs)


def b_abs(n: Any) -> Any:
    return abs(n)


def b_round(x: Any, digits: int | None = None) -> Any:
    if digits is None:
        return int(round(x))
    return float(round(x, digits))


MAX_RANGE = 10_000_000


def b_range(n: int, *rest: int) -> list:
    r = range(n, *rest)
    if len(r) > MAX_RANGE:  # a list this long would stall the run (and a server)
        raise KflowError("ValueError", f"range({n}) is too long (more than {MAX_RANGE:,} "
                         "items)")
    return list(r)


def b_sorted(xs: list) -> list:
    try:
        return sorted(xs)
    except TypeError:
        raise KflowError("TypeError", "sorted() of values that cannot be compared") from None
