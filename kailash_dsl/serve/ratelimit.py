"""Per-key token buckets, shared by every channel of one server (REST and MCP).

A rate is written ``N/s``, ``N/m`` or ``N/h`` (``--rate-limit 20/s``, or ``rate_limit`` on
a key). The bucket holds up to N tokens (the burst) and refills at N per unit; every
request spends one. An empty bucket answers 429 with ``Retry-After`` (whole seconds until
a token is back).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass

_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
          "h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: float
    text: str


def parse_rate(text: str) -> Rate:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*", text or "")
    if not m or m.group(2) not in _UNITS or float(m.group(1)) <= 0:
        raise ValueError(f"expected a rate like 20/s, 600/m or 1000/h, not `{text}`")
    n = float(m.group(1))
    return Rate(n / _UNITS[m.group(2)], max(1.0, n), text.strip())


class Limiter:
    """Token buckets by principal; ``default`` applies to callers without their own rate."""

    def __init__(self, default: Rate | None = None, clock=time.monotonic) -> None:
        self.default = default
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, last)

    @property
    def active(self) -> bool:
        return True

    def take(self, bucket: str, rate: Rate | None = None) -> float:
        """Spend a token: 0.0 when allowed, else the seconds until one is available."""
        rate = rate or self.default
        if rate is None:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.get(bucket, (rate.burst, now))
        tokens = min(rate.burst, tokens + (now - last) * rate.per_second)
        if tokens >= 1.0:
            self._buckets[bucket] = (tokens - 1.0, now)
            return 0.0
        self._buckets[bucket] = (tokens, now)
        return (1.0 - tokens) / rate.per_second


def retry_after_header(wait: float) -> str:
    return str(max(1, math.ceil(wait)))
