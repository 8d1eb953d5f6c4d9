"""Node implementations for examples/flaky/flaky.kflow: a stand-in rate service.

"flaky" fails the first two attempts of each step (it looks at ctx.attempt, so the
behaviour is the same on every run), "down" fails every attempt.
"""

from __future__ import annotations

LIVE = {("EUR", "USD"): 1.0842, ("EUR", "GBP"): 0.8571, ("EUR", "JPY"): 162.37, ("EUR", "CHF"): 0.9612}
CACHED = {("EUR", "USD"): 1.08, ("EUR", "GBP"): 0.86, ("EUR", "JPY"): 161.9, ("EUR", "CHF"): 0.96}


def fetch_rate(base, quote, simulate="ok", *, ctx):
    if simulate == "down" or (simulate == "flaky" and ctx.attempt <= 2):
        ctx.log(f"rate service unavailable (attempt {ctx.attempt})")
        raise ConnectionError(f"rate service unavailable for {base}/{quote}")
    rate = LIVE.get((base, quote))
    if rate is None:
        raise LookupError(f"no rate for {base}/{quote}")
    return {"rate": rate, "source": "live"}


def cached_rate(base, quote):
    rate = CACHED.get((base, quote))
    if rate is None:
        raise LookupError(f"no cached rate for {base}/{quote}")
    return {"rate": rate, "source": "cache"}
