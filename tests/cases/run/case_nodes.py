"""Node implementations for the project's own run cases (tests/cases/run).

Plain Python with no import of kflow, like ../shared/conformance/conf_nodes.py, so the
cases run under the shared runner too. State (effect log, crash markers, attempt
counters, timestamps) lives in $KFLOW_CONF_STATE, a fresh folder per case.

Every line appended to ``effects.log`` is fsynced: a crash test counts them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from pathlib import Path

_inflight = 0
_max_inflight = 0


def _state() -> Path:
    path = Path(os.environ.get("KFLOW_CONF_STATE", ".kflow-case-state"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _effect(line: str) -> None:
    with open(_state() / "effects.log", "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


def _bump(name: str) -> int:
    counter = _state() / f"count-{name}"
    n = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(n))
    return n


class KindError(Exception):
    """An exception with a ``kind``: the runtime uses it as the error kind (§9)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# --- pure ---------------------------------------------------------------------

def double(n):
    return n * 2


def describe(n):
    return {"n": n, "even": n % 2 == 0}


# --- effects ------------------------------------------------------------------

def record(name):
    """A write: appends ``name`` to the effect log."""
    _effect(name)
    return {"name": name}


def record_n(name, n):
    _effect(f"{name}:{n}")
    return n


def lookup(name):
    """A read that records that it ran."""
    _effect(f"read:{name}")
    return {"name": name, "size": len(name)}


def always_fail(message):
    _effect(f"fail:{message}")
    raise RuntimeError(message)


def fail_kind(kind, message):
    _effect(f"fail:{kind}")
    raise KindError(kind, message)


def fail_times(n, tag):
    """Fails the first ``n`` attempts for ``tag`` (across processes), then succeeds."""
    attempt = _bump(f"attempt-{tag}")
    _effect(f"attempt:{tag}")
    if attempt <= n:
        raise RuntimeError(f"{tag}: planned failure {attempt} of {n}")
    return {"attempts": attempt}


def fail_times_timed(n, tag):
    """Like fail_times, and reports the gaps (ms) between attempts."""
    stamps = _state() / f"stamps-{tag}.json"
    times = json.loads(stamps.read_text()) if stamps.exists() else []
    times.append(time.monotonic())
    stamps.write_text(json.dumps(times))
    _effect(f"attempt:{tag}")
    if len(times) <= n:
        raise RuntimeError(f"{tag}: planned failure {len(times)} of {n}")
    gaps = [round((b - a) * 1000) for a, b in itertools.pairwise(times)]
    return {"attempts": len(times), "gaps": gaps}


async def slow(ms, tag):
    _effect(f"start:{tag}")
    await asyncio.sleep(ms / 1000)
    _effect(f"end:{tag}")
    return {"tag": tag, "slept": ms}


async def probe(ms, tag):
    """Tracks how many probes are in flight at once in this process."""
    global _inflight, _max_inflight
    _inflight += 1
    _max_inflight = max(_max_inflight, _inflight)
    try:
        await asyncio.sleep(ms / 1000)
    finally:
        _inflight -= 1
    _effect(f"probe:{tag}")
    return {"tag": tag}


def max_inflight(after):
    return {"max": _max_inflight}


def crash_once(tag):
    """Kills the whole process the first time it runs for ``tag``."""
    marker = _state() / f"crashed-{tag}"
    if not marker.exists():
        marker.write_text("1")
        os._exit(137)
    _effect(f"survived:{tag}")
    return {"tag": tag}


def remember(value, tag):
    """First call stores ``value``; later calls record whether they got the same one."""
    stored = _state() / f"remember-{tag}"
    if not stored.exists():
        stored.write_text(value)
        _effect(f"stored:{tag}")
        return {"same": True}
    same = stored.read_text() == value
    _effect(f"{'same' if same else 'differs'}:{tag}")
    return {"same": same}


def key_of(tag, *, ctx):
    """Returns the step key and idempotency key it was called with."""
    _effect(f"key:{tag}:{ctx.step_key}")
    return {"step_key": ctx.step_key, "idempotency_key": ctx.idempotency_key,
            "attempt": ctx.attempt}


def set_environ(name, value):
    """Changes this process's environment (a write: the world changed)."""
    os.environ[name] = value
    _effect(f"setenv:{name}")


# --- saga participants --------------------------------------------------------

def book(what, order_id):
    _effect(f"book:{what}:{order_id}")
    if order_id.startswith("bad-" + what):
        raise RuntimeError(f"cannot book {what} for {order_id}")
    return {"booking": f"{what}-{order_id}"}


def cancel(booking):
    _effect(f"cancel:{booking}")
    return {"ok": True}


def pay(order_id, amount):
    _effect(f"pay:{order_id}")
    if order_id.startswith("bad-pay"):
        raise KindError("PaymentDeclined", f"card declined for {order_id}")
    return {"payment": f"pay-{order_id}", "amount": amount}


# --- 2PC participant ----------------------------------------------------------

class Ledger:
    """A two-phase-commit participant keeping balances in a JSON file (start at 100)."""

    def _load(self):
        path = _state() / "ledger.json"
        if path.exists():
            return json.loads(path.read_text())
        return {"balances": {}, "pending": {}}

    def _save(self, data):
        path = _state() / "ledger.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True))
        os.replace(tmp, path)

    def prepare(self, account, delta, *, ctx):
        data = self._load()
        balance = data["balances"].get(account, 100) + delta
        _effect(f"prepare:{account}")
        if balance < 0:
            raise RuntimeError(f"insufficient funds in {account}")
        data["pending"][ctx.idempotency_key] = {"account": account, "delta": delta}
        self._save(data)
        return {"balance": balance}

    def commit(self, *, ctx):
        data = self._load()
        entry = data["pending"].pop(ctx.idempotency_key, None)
        if entry is not None:
            acct = entry["account"]
            data["balances"][acct] = data["balances"].get(acct, 100) + entry["delta"]
            _effect(f"commit:{acct}")
        self._save(data)

    def abort(self, *, ctx):
        data = self._load()
        entry = data["pending"].pop(ctx.idempotency_key, None)
        if entry is not None:
            _effect(f"abort:{entry['account']}")
        self._save(data)


def balances(after):
    data = Ledger()._load()
    return {"balances": data["balances"], "pending": len(data["pending"])}


def stopwatch(tag):
    """First call starts the watch; later calls return the ms elapsed since (wall clock)."""
    path = _state() / f"stopwatch-{tag}"
    now = time.time()
    if not path.exists():
        path.write_text(repr(now))
        _effect(f"watch:{tag}:start")
        return {"ms": 0}
    _effect(f"watch:{tag}:lap")
    return {"ms": round((now - float(path.read_text())) * 1000)}


def flaky_key(n, tag, *, ctx):
    """Fails the first ``n`` attempts; returns whether every attempt saw the same key."""
    path = _state() / f"keys-{tag}.json"
    seen = json.loads(path.read_text()) if path.exists() else []
    seen.append([ctx.attempt, ctx.idempotency_key])
    path.write_text(json.dumps(seen))
    _effect(f"try:{tag}:{ctx.attempt}")
    if len(seen) <= n:
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return {"attempts": [a for a, _ in seen], "same_key": len({k for _, k in seen}) == 1,
            "key": ctx.idempotency_key}


class CrashyPrepareLedger(Ledger):
    """Like Ledger, but the process dies the first time account 'b' is prepared."""

    def prepare(self, account, delta, *, ctx):
        marker = _state() / "crashed-prepare"
        if account == "b" and not marker.exists():
            marker.write_text("1")
            os._exit(137)
        return super().prepare(account, delta, ctx=ctx)


def refund_fails(booking):
    _effect(f"refund-fails:{booking}")
    raise RuntimeError(f"cannot cancel {booking}")


def crash_on(tag, crash_tag):
    """A write that kills the process the first time it runs for ``crash_tag``."""
    if tag == crash_tag:
        marker = _state() / f"crashed-{tag}"
        if not marker.exists():
            marker.write_text("1")
            os._exit(137)
    _effect(f"done:{tag}")
    return {"tag": tag}


def slow_sync(ms, tag):
    """A synchronous write that takes ``ms`` and then records its effect."""
    time.sleep(ms / 1000)
    _effect(f"late:{tag}")
    return {"tag": tag, "slept": ms}


async def slow_fail(kind, ms):
    """Fails with ``kind`` after ``ms`` milliseconds."""
    await asyncio.sleep(ms / 1000)
    _effect(f"fail:{kind}")
    raise KindError(kind, f"{kind} after {ms}ms")
