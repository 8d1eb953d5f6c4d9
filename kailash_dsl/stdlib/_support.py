"""Helpers shared by the standard library's node implementations."""

from __future__ import annotations

import datetime as _dt
import logging
import os
from pathlib import Path
from typing import Any

_log = logging.getLogger("kflow.stdlib")


def base_dir(ctx: Any) -> Path:
    """The folder relative paths are resolved against.

    The runtime puts the ``.kflow`` file's folder in ``ctx.base_dir``; without one (a
    direct call from Python or a runtime that does not set it) ``$KFLOW_BASE_DIR``, then
    the current directory, are used.
    """
    value = getattr(ctx, "base_dir", None) if ctx is not None else None
    if value:
        return Path(value)
    env = os.environ.get("KFLOW_BASE_DIR")
    return Path(env) if env else Path.cwd()


def resolve_path(path: str, ctx: Any) -> Path:
    """Expand ``~`` and make a relative path absolute against :func:`base_dir`."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute():
        p = base_dir(ctx) / p
    return p


def log(ctx: Any, message: str) -> None:
    """Write to the run's log when there is a ``ctx``, else to Python logging."""
    if ctx is not None and callable(getattr(ctx, "log", None)):
        ctx.log(message)
    else:
        _log.info(message)


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def duration_seconds(value: Any) -> float | None:
    """A kflow ``duration`` as seconds.

    The runtime passes durations as an ``int`` of milliseconds; a ``timedelta`` or the
    literal text (``"30s"``) is accepted too. ``None`` means no limit.
    """
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bool):
        raise TypeError("a duration cannot be a bool")
    if isinstance(value, (int, float)):
        return float(value) / 1000.0
    if isinstance(value, str):
        text = value.strip()
        for unit in ("ms", "s", "m", "h", "d"):
            if text.endswith(unit) and text[: -len(unit)].replace("_", "").isdigit():
                return int(text[: -len(unit)].replace("_", "")) * _UNITS_MS[unit] / 1000.0
    raise TypeError(f"not a duration: {value!r} (write e.g. 250ms, 30s, 5m)")
