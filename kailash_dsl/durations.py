"""Duration literals (`250ms`, `30s`, `5m`, `2h`, `1d`) ↔ milliseconds.

Kept apart from the parser so the runtime can read `--block-for` and journal values
without importing Lark.
"""

from __future__ import annotations

import re

UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_RE = re.compile(r"([0-9][0-9_]*)(ms|s|m|h|d)")


def parse_duration(text: str) -> int:
    """``"250ms"`` → 250 (milliseconds)."""
    m = _RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r} (write e.g. 250ms, 30s, 5m, 2h, 1d)")
    return int(m.group(1).replace("_", "")) * UNITS[m.group(2)]


def format_duration(ms: int) -> str:
    """Milliseconds → the literal in the largest unit that divides it exactly (§3)."""
    for unit in ("d", "h", "m", "s"):
        size = UNITS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
