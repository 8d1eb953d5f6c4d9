"""Calling node implementations: loading ``@impl``, ``ctx``, retries, timeouts, breakers.

The contract (§4): a callable, sync or async, called with keyword arguments plus ``ctx``
when it declares a keyword-only ``ctx``. Synchronous ``read``/``write`` implementations
run in a worker thread so they never block the event loop; synchronous ``pure`` ones run
inline (they must not block). A ``@transactional`` node's ``@impl`` names a class,
instantiated once per process.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable  # noqa: F401

from ..compiler.bytecode import RuntimeNode
from ..compiler.program import NO_RETRY, READ_RETRY, RetryPolicy
from .values import KflowError


@dataclass
class StepContext:
    """What an implementation sees as ``ctx``."""

    run_id: str
    step_key: str
    attempt: int
    idempotency_key: str
    base_dir: str = "."
    _log: Callable[[str], None] | None = None

    def log(self, msg: str) -> None:
        if self._log is not None:
            self._log(str(msg))


@dataclass
class Impl:
    fn: Callable
    is_async: bool
    wants_ctx: bool
    instance: Any = None  # for @transactional classes


_IMPLS: dict[str, Impl | KflowError] = {}
_INSTANCES: dict[str, Any] = {}
_LOCK = threading.Lock()


def _accepts_ctx(fn: Callable) -> bool:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    p = sig.parameters.get("ctx")
    if p is not None and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD):
        return True
    return False


def load_impl(node: RuntimeNode, method: str | None = None) -> Impl:
    """Import ``node.impl`` once. ``method`` picks prepare/commit/abort of a class."""
    cache_key = f"{node.impl}#{method or ''}"
    hit = _IMPLS.get(cache_key)
    if isinstance(hit, Impl):
        return hit
    if isinstance(hit, KflowError):
        raise hit
    with _LOCK:
        try:
            impl = _load(node, method)
        except KflowError as exc:
            _IMPLS[cache_key] = exc
            raise
        _IMPLS[cache_key] = impl
        return impl


def _load(node: RuntimeNode, method: str | None) -> Impl:
    spec = node.impl
    if not spec or ":" not in spec:
        raise KflowError("StepFailed", f"node `{node.name}` has no @impl(\"module:attribute\") "
                         f"({node.file}:{node.line})")
    mod_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:  # ImportError, or an error while importing user code
        raise KflowError("StepFailed", f"cannot import `{mod_name}` for node `{node.name}`: "
                         f"{type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise KflowError("StepFailed", f"`{spec}` not found: module `{mod_name}` has no "
                             f"`{attr}` (node `{node.name}`)")
    if inspect.isclass(obj):
        inst = _INSTANCES.get(spec)
        if inst is None:
            try:
                inst = _INSTANCES[spec] = obj()
            except Exception as exc:
                raise KflowError("StepFailed", f"cannot instantiate `{spec}`: {exc}") from None
        name = method or ("prepare" if hasattr(inst, "prepare") else "__call__")
        fn = getattr(inst, name, None)
        if fn is None:
            raise KflowError("StepFailed", f"`{spec}` has no `{name}` method")
        return Impl(fn, inspect.iscoroutinefunction(fn), _accepts_ctx(fn), inst)
    if method is not None:
        raise KflowError("StepFailed", f"`{spec}` must be a class with prepare/commit/abort "
                         f"to be @transactional")
    if not callable(obj):
        raise KflowError("StepFailed", f"`{spec}` is not callable")
    return Impl(obj, inspect.iscoroutinefunction(obj), _accepts_ctx(obj))


# --------------------------------------------------------------------------- threads

_EXECUTOR: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """Worker threads for synchronous read/write implementations.

    Sized for I/O-bound steps (asyncio's default pool has cpu+4 workers, which would
    serialise a fan-out of blocking reads on a 2-core machine).
    """
    global _EXECUTOR
    if _EXECUTOR is None or getattr(_EXECUTOR, "_shutdown", False):
        _EXECUTOR = ThreadPoolExecutor(max_workers=256, thread_name_prefix="kflow-step")
    return _EXECUTOR


# --------------------------------------------------------------------------- policies

def retry_policy(node: RuntimeNode, override: RetryPolicy | None) -> RetryPolicy:
    if override is not None:
        return override
    if node.retry is not None:
        return node.retry
    return READ_RETRY if node.effect == "read" else NO_RETRY


def backoff_delay(policy: RetryPolicy, attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
    b = policy.backoff
    if b.kind == "constant":
        delay = b.base_ms
    else:
        delay = b.base_ms * (2 ** (attempt - 1))
        if b.max_ms is not None:
            delay = min(delay, b.max_ms)
    if b.jitter:
        delay = random.uniform(0, delay)
    return delay / 1000.0


NOT_RETRIED = {"TypeError", "CircuitOpen", "Cancelled", "IndexError"}


class CircuitBreaker:
    """Opens after N consecutive failures; half-opens after ``reset``; shared per process."""

    def __init__(self, failures: int, reset_ms: int) -> None:
        self.failures, self.reset = failures, reset_ms / 1000.0
        self.count = 0
        self.opened_at: float | None = None
        self.state = "closed"

    def before(self, name: str) -> None:
        if self.state == "open":
            if time.monotonic() - (self.opened_at or 0) >= self.reset:
                self.state = "half-open"
            else:
                raise KflowError("CircuitOpen", f"circuit for `{name}` is open after "
                                 f"{self.failures} consecutive failures")

    def success(self) -> None:
        self.count = 0
        self.state = "closed"
        self.opened_at = None

    def failure(self) -> None:
        self.count += 1
        if self.state == "half-open" or self.count >= self.failures:
            self.state = "open"
            self.opened_at = time.monotonic()


_BREAKERS: dict[str, CircuitBreaker] = {}
_BULKHEADS: dict[str, asyncio.Semaphore] = {}


def breaker_for(node: RuntimeNode) -> CircuitBreaker | None:
    if node.circuit_breaker is None:
        return None
    b = _BREAKERS.get(node.qualname)
    if b is None:
        b = _BREAKERS[node.qualname] = CircuitBreaker(*node.circuit_breaker)
    return b


def bulkhead_for(node: RuntimeNode) -> asyncio.Semaphore | None:
    if node.bulkhead is None:
        return None
    s = _BULKHEADS.get(node.qualname)
    if s is None:
        s = _BULKHEADS[node.qualname] = asyncio.Semaphore(node.bulkhead)
    return s


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """(kind, message) for an exception raised by an implementation."""
    if isinstance(exc, KflowError):
        return exc.kind, exc.message
    kind = getattr(exc, "kind", None)
    if not isinstance(kind, str) or not kind.isidentifier():
        kind = "StepFailed"
    msg = str(exc) or type(exc).__name__
    return kind, msg


async def invoke(node: RuntimeNode, impl: Impl, kwargs: dict, ctx: StepContext | None,
                 timeout_ms: int | None) -> Any:
    """One attempt: call the implementation, with the timeout if any."""
    if impl.wants_ctx:
        kwargs = dict(kwargs, ctx=ctx)
    timeout = timeout_ms / 1000.0 if timeout_ms else None
    if impl.is_async:
        coro = impl.fn(**kwargs)
        if timeout is None:
            return await coro
        return await asyncio.wait_for(coro, timeout)
    if node.effect == "pure" and timeout is None:
        return impl.fn(**kwargs)
    loop = asyncio.get_running_loop()
    if timeout is None:
        return await loop.run_in_executor(executor(), lambda: impl.fn(**kwargs))
    attempt = _ThreadAttempt(impl.fn, kwargs)
    fut = loop.run_in_executor(executor(), attempt.run)
    try:
        return await asyncio.wait_for(fut, timeout)
    except asyncio.TimeoutError:
        attempt.cancel()
        raise


class StepCancelled(BaseException):
    """Raised inside a worker thread whose attempt timed out (§9: the attempt is cancelled)."""


class _ThreadAttempt:
    """A synchronous attempt in a worker thread that a timeout can cancel.

    Python cannot kill a thread; it can raise an exception in it at its next bytecode
    (``PyThreadState_SetAsyncExc``). A blocking C call (``time.sleep``, a socket read)
    finishes first, but the code after it — the part that would change the world once
    the step has already failed with ``Timeout`` — does not run.
    """

    def __init__(self, fn: Callable, kwargs: dict) -> None:
        self.fn, self.kwargs = fn, kwargs
        self.tid: int | None = None
        self.finished = False
        self.lock = threading.Lock()

    def run(self) -> Any:
        with self.lock:
            self.tid = threading.get_ident()
        try:
            return self.fn(**self.kwargs)
        except StepCancelled:
            return None
        finally:
            with self.lock:
                self.finished = True

    def cancel(self) -> None:
        import ctypes

        with self.lock:
            if self.finished or self.tid is None:
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.tid),
                                                       ctypes.py_object(StepCancelled))


def ensure_path(dirs: list[str]) -> None:
    for d in reversed(dirs):
        if d not in sys.path:
            sys.path.insert(0, d)
