"""Node implementations for the emitter fixtures (tests/emit_fixtures/*.kflow).

Effects are appended to $EMIT_FIXTURE_LOG (one line each) so a test can compare what
`kflow run` and the ejected Python module did.
"""

import asyncio
import os


def _log(line):
    path = os.environ.get("EMIT_FIXTURE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def lookup(key):
    return {"value": f"value-of-{key}"}


def store(key, value=""):
    _log(f"store:{key}")
    return {"stored": True}


def upper(text):
    return text.upper()


def price(sku):
    prices = {"apple": 0.5, "pear": 0.75, "melon": 3.0}
    if sku not in prices:
        raise LookupError(f"no price for {sku}")
    return {"sku": sku, "price": prices[sku]}


async def slow_echo(value, ms=10):
    await asyncio.sleep(ms / 1000)
    return value


def book(item, *, ctx):
    _log(f"book:{item}:{ctx.step_key}")
    if item == "broken":
        raise RuntimeError(f"cannot book {item}")
    return {"booking": f"bk-{item}"}


def cancel(booking):
    _log(f"cancel:{booking}")


class QuotaError(Exception):
    kind = "Quota"


def spend(amount):
    if amount > 100:
        raise QuotaError(f"over quota by {amount - 100}")
    return {"left": 100 - amount}
