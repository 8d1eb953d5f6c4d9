"""``std.core``: Log, Echo, Fail, Now, Uuid."""

from __future__ import annotations

import datetime as _dt
import logging
import uuid as _uuid
from typing import Any

from .errors import NodeError

LEVELS = ("debug", "info", "warning", "error")
_pylog = logging.getLogger("kflow.log")


def log(message: str, level: str = "info", *, ctx: Any = None) -> None:
    """Write ``message`` to the run's log at ``level``."""
    level = str(level).lower()
    if level == "warn":
        level = "warning"
    if level not in LEVELS:
        raise NodeError("ValueError", f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    if ctx is not None and callable(getattr(ctx, "log", None)):
        ctx.log(message if level == "info" else f"[{level}] {message}")
    else:
        _pylog.log(getattr(logging, level.upper()), message)
    return None


def echo(value: Any) -> Any:
    """Return ``value`` unchanged."""
    return value


def fail(kind: str, message: str) -> None:
    """Fail the step with an error of kind ``kind``."""
    raise NodeError(str(kind) or "Failed", str(message))


def now(*, ctx: Any = None) -> str:
    """The current UTC time, ISO-8601 with millisecond precision and a ``Z`` suffix."""
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def uuid(*, ctx: Any = None) -> str:
    """A random version-4 UUID."""
    return str(_uuid.uuid4())


__all__ = ["log", "echo", "fail", "now", "uuid", "LEVELS"]
