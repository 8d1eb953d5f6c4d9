"""The durable interpreter: runs bytecode on asyncio, journaling as §7 requires.

Execution model. A frame runs its code's instructions in order. ``STEP`` does not wait
for the step: it leaves a pending task in the step's slot, and the task starts the
implementation once (a) every slot it reads holds a value and (b) every earlier step
still in flight whose effects conflict with it has finished (§6) — checked against the
run's in-flight registry, so unrelated steps never wait for each other. Whoever reads a
pending slot awaits it. Control flow waits where it must (``BARRIER``).

Durability is replay: a resumed run executes the program again from the top; a step
whose outcome is in the journal returns it without running, journaled builtins return
their recorded values, pure work is recomputed. Outcomes are buffered and written in
group commits just before a write step starts (the flushes the compiler placed), before
parking on a wait/sleep, and with the run's result.

Failures carry the :class:`Scope` they happened in, so a ``try`` catches only failures
of steps inside its body and a failed step stops later steps of its own scope.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random as _random
import time
import uuid as _uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..compiler import bytecode as B
from ..compiler import types as T
from ..compiler import validators as V
from ..compiler.effects import conflicts
from . import nodes as N
from . import values as R
from .journal import StepRecord, encode_json
from .values import KflowError

Op = B.Op
# opcodes as module globals: an IntEnum member lookup (`Op.STEP`) costs ~75 ns, and
# the dispatch chain of exec_code does up to sixteen per instruction
_AWAIT = Op.AWAIT
_BARRIER = Op.BARRIER
_EMIT = Op.EMIT
_FAIL = Op.FAIL
_FLUSH = Op.FLUSH
_FOR = Op.FOR
_JUMP = Op.JUMP
_JUMP_IF_NOT = Op.JUMP_IF_NOT
_LET = Op.LET
_PARALLEL = Op.PARALLEL
_RETURN = Op.RETURN
_SLEEP = Op.SLEEP
_STEP = Op.STEP
_TRY = Op.TRY
_TX = Op.TX
_WAIT = Op.WAIT
_YIELD = Op.YIELD
_PENDING = asyncio.Future


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class Park(Exception):
    """The run must wait (signal or timer) longer than this process may block."""

    def __init__(self, wake_at: float | None, reason: str) -> None:
        self.wake_at, self.reason = wake_at, reason


class _Aborted(Exception):
    """A step that never started because an earlier step of its scope failed."""


class Scope:
    """A failure domain: workflow body, try body, loop iteration, transaction..."""

    __slots__ = ("parent", "tasks", "failed", "effect_tasks", "parallel")

    def __init__(self, parent: "Scope | None" = None, parallel: bool = False) -> None:
        self.parent = parent
        #: the scope of a `parallel { }` block: control flow inside it does not wait for
        #: the effects of the block's other statements (§6: conflicts are ignored there)
        self.parallel = parallel
        self.tasks: list[asyncio.Task] = []
        self.effect_tasks: list[asyncio.Task] = []  # the tasks of non-pure steps
        self.failed: KflowError | None = None

    def within(self, other: "Scope") -> bool:
        s: Scope | None = self
        while s is not None:
            if s is other:
                return True
            s = s.parent
        return False

    def chain_failure(self) -> KflowError | None:
        s: Scope | None = self
        while s is not None:
            if s.failed is not None:
                return s.failed
            s = s.parent
        return None


class TxState:
    """Book-keeping of one transaction block while it runs."""

    def __init__(self, spec: B.TxSpec, key: str) -> None:
        self.spec = spec
        self.key = key
        self.pattern = spec.pattern
        self.completed: list[tuple[str, B.RuntimeNode, dict, Any]] = []  # saga
        self.prepared: list[tuple[str, B.RuntimeNode]] = []  # 2pc
        self.pivot_done = False


class Frame:
    __slots__ = ("run", "wf", "slots", "prefix", "scope", "group", "tx", "yields",
                 "yield_scope", "ancestors", "order", "counter", "par")

    def __init__(self, run: "Run", wf: B.RuntimeWorkflow, slots: list, prefix: str,
                 scope: Scope, group: Any = None, tx: TxState | None = None,
                 ancestors: frozenset = frozenset()) -> None:
        self.run, self.wf, self.slots, self.prefix = run, wf, slots, prefix
        self.scope, self.group, self.tx = scope, group, tx
        self.yields: list | None = None
        #: the loop iteration's scope that ``yields`` belongs to
        self.yield_scope: Scope | None = None
        #: the workflow-call tasks this frame runs inside: never wait for those
        self.ancestors = ancestors
        #: program-order position of this frame's steps: a step's position is
        #: order + (n,), so steps compare by where they are in the program, not by when
        #: they were started (a callee's steps come before the caller's next call)
        self.order: tuple = ()
        self.counter = [0]
        #: the parallel groups (`parallel { }`, @concurrency loops) a workflow call made
        #: this frame's steps part of: group -> the position of that call (its branch)
        self.par: dict = {}
        slots[0] = self

    def child(self, scope: Scope | None = None, group: Any = None, tx: Any = None,
              copy: bool = False, prefix: str | None = None) -> "Frame":
        slots = list(self.slots) if copy else self.slots
        f = Frame(self.run, self.wf, slots, self.prefix if prefix is None else prefix,
                  scope or self.scope, group if group is not None else self.group,
                  tx if tx is not None else self.tx, self.ancestors)
        f.order, f.counter = self.order, self.counter
        f.par = self.par
        if not copy:
            slots[0] = self  # keep slot 0 pointing at the owner of the shared slots
            f.yields = self.yields  # a `yield` inside try/parallel/transaction counts
            f.yield_scope = self.yield_scope
        return f


def _earlier(a: KflowError, b: KflowError) -> bool:
    """Does failure ``a`` come from an earlier statement than ``b``? (A failure with no
    step position was raised by the interpreter itself, after every step it started.)"""
    pa, pb = getattr(a, "pos", None), getattr(b, "pos", None)
    return pa is not None and (pb is None or pa < pb)


def _note(scope: Scope, exc: KflowError) -> None:
    if scope.failed is None or _earlier(exc, scope.failed):
        scope.failed = exc


class _InFlight:
    __slots__ = ("task", "effects", "par", "tx", "pos")

    def __init__(self, task, effects, par, tx, pos) -> None:
        #: par: parallel group -> branch (the step's own position, or that of the
        #: workflow call it runs inside); steps of different branches never conflict
        self.task, self.effects, self.par, self.tx = task, effects, par, tx
        self.pos = pos


def _membership(frame: "Frame", pos: tuple) -> dict:
    """The parallel groups a step at ``pos`` of ``frame`` belongs to, with its branch."""
    if frame.group is None:
        return frame.par
    return {**frame.par, frame.group: pos}


_NOT_INLINE = object()


def _covers(mine: frozenset, theirs: frozenset) -> bool:
    """Does a step with effects ``mine`` write over everything ``theirs`` touches?"""
    for _e, r in theirs:
        if ("write", None) not in mine and ("write", r) not in mine:
            return False
    return True


@functools.lru_cache(maxsize=256)
def _parent_dir(path: str) -> str:
    return str(Path(path).parent)


class Run:
    """One execution (first run or resume) of one run id in this process."""

    def __init__(self, prog: B.CompiledProgram, wf: B.RuntimeWorkflow, run_id: str,
                 journal: Any, recorded: dict[str, tuple[bool, Any]],
                 block_for: float, next_seq: int = 0,
                 environ: dict[str, str] | None = None) -> None:
        self.prog = prog
        self.wf = wf
        self.run_id = run_id
        self.journal = journal
        self.recorded = recorded
        self.pending: list[StepRecord] = []
        self.pending_events: list[tuple] = []
        self.seq = next_seq
        self.inflight: list[_InFlight] = []
        self.flush_lock = asyncio.Lock()
        self.block_deadline = time.time() + block_for
        self.secrets: set[str] = set()
        self.flushes = 0
        self.base_dir = _parent_dir(prog.path)
        self.steps_run = 0
        #: set when `kflow cancel` asked for this run (checked at instruction boundaries)
        self.cancel_requested = False
        self.nondet_seen: dict[str, int] = {}
        #: §10: env() reads the environment as it was when the run (or resume) started;
        #: a server passes the snapshot it took at startup (copying it is most of the
        #: cost of a Run). Read-only.
        self.environ = environ if environ is not None else dict(os.environ)
        #: the result's JSON text once the run completed (a server answers with it)
        self.output_json: str | None = None

    # -- journal ---------------------------------------------------------------
    def record(self, key: str, ok: bool, value_json: Any, attempts: int = 1,
               started: float | None = None) -> None:
        if self.secrets:
            value_json = self.redact(value_json)  # §10: secrets never reach the journal
        self.recorded[key] = (ok, value_json)
        self.pending.append(StepRecord(key, ok, encode_json(value_json), attempts, started,
                                       time.time()))

    def event(self, type_: str, step: str | None = None, data: Any = None) -> None:
        self.seq += 1
        if data is not None and self.secrets:
            data = self.redact(data)
        self.pending_events.append((self.seq, time.time(), type_, step,
                                    encode_json(data) if data is not None else None))

    def event_json(self, type_: str, step: str | None, data_json: str) -> None:
        """:meth:`event` with its data already encoded (and free of secrets)."""
        self.seq += 1
        self.pending_events.append((self.seq, time.time(), type_, step, data_json))

    async def flush(self, run_update: dict | None = None) -> None:
        async with self.flush_lock:
            if not self.pending and not self.pending_events and run_update is None:
                return
            steps, events = self.pending, self.pending_events
            self.pending, self.pending_events = [], []
            await self.journal.commit(self.run_id, steps, events, run_update)
            self.flushes += 1

    def redact(self, v: Any) -> Any:
        if not self.secrets:
            return v
        if isinstance(v, str):
            for s in self.secrets:
                if s:
                    v = v.replace(s, "***")
            return v
        if isinstance(v, list):
            return [self.redact(x) for x in v]
        if isinstance(v, dict):
            return {k: self.redact(x) for k, x in v.items()}
        return v

    # -- journaled builtins ------------------------------------------------------
    def nondet(self, site: str, n: int, name: str, args: list) -> Any:
        if name in ("env", "secret"):
            key = f"${name}:{args[0]}"
        else:
            key = f"{site}:{name}#{n}"
            # the same call site evaluated again (a comprehension) gets its own value
            seen = self.nondet_seen.get(key, 0) + 1
            self.nondet_seen[key] = seen
            if seen > 1:
                key = f"{key}.{seen}"
        rec = self.recorded.get(key)
        if name == "secret":
            value = self.environ.get(str(args[0]))
            if value is None:
                raise KflowError("StepFailed", f"secret `{args[0]}` is not set in the "
                                 "environment")
            self.secrets.add(value)
            if rec is None:
                self.record(key, True, "***")
            return value
        if rec is not None:
            return rec[1]
        if name == "uuid":
            value: Any = str(_uuid.uuid4())
        elif name == "now":
            value = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        elif name == "random":
            value = _random.random()
        elif name == "env":
            value = self.environ.get(str(args[0]))
        else:  # pragma: no cover
            raise KflowError("StepFailed", f"unknown builtin {name}")
        self.record(key, True, value)
        return value

    # -- the interpreter -----------------------------------------------------------
    async def execute(self, input_values: dict) -> Any:
        wf = self.wf
        slots: list = [None] * wf.nslots
        for i, p in enumerate(wf.params):
            slots[i + 1] = input_values.get(p.name)
        frame = Frame(self, wf, slots, "", Scope())
        return await self.run_workflow_frame(frame)

    async def run_workflow_frame(self, frame: Frame) -> Any:
        try:
            ret = await self.exec_code(frame.wf.code, frame)
            if ret is not None:
                return ret.value
            await self.end_scope(frame.scope)
        except _Return as r:  # a `return` inside a block
            return r.value
        except KflowError as exc:
            raise await self._first_failure(frame.scope, exc) from None
        return None

    async def _first_failure(self, scope: Scope, exc: KflowError) -> KflowError:
        """§6, as if in textual order: once the scope's steps have settled, the failure
        of the earliest statement, whichever failed first in time."""
        await self._settle(scope)
        failed = scope.failed
        return failed if failed is not None and _earlier(failed, exc) else exc

    async def exec_code(self, code: B.Code, frame: Frame) -> _Return | None:
        """Run ``code``; a `return` at the top of a workflow's body gives its value as a
        :class:`_Return` (raising it costs microseconds), one inside a block raises it."""
        instrs = code.instrs
        pc = 0
        n = len(instrs)
        slots = frame.slots
        while pc < n:
            ins = instrs[pc]
            pc += 1
            op = ins.op
            failed = frame.scope.chain_failure()
            if failed is not None:
                raise failed
            if op is _STEP:
                self.start_step(frame, ins.arg)
            elif op is _LET:
                slot, ec = ins.arg
                pend = [slots[s] for s in ec.reads if isinstance(slots[s], _PENDING)]
                if pend:
                    task = asyncio.ensure_future(self._deferred_value(frame, ec, pend, ins))
                    if slot is not None:
                        slots[slot] = task
                    frame.scope.tasks.append(task)
                    task.add_done_callback(self._note_failure(frame.scope))
                else:
                    value = self.eval(ec, slots, ins, frame)
                    if slot is not None:
                        slots[slot] = value
            elif op is _JUMP_IF_NOT:
                ec, target = ins.arg
                await self.resolve(frame, ec.reads)
                if not self.eval(ec, slots, ins, frame):
                    pc = target
            elif op is _JUMP:
                pc = ins.arg
            elif op is _BARRIER:
                scope = frame.scope
                if scope.tasks or scope.parent is not None:  # else: nothing in flight
                    await self.barrier(frame, ins.arg == "effects")
            elif op is _AWAIT:
                for s in ins.arg:
                    if isinstance(slots[s], _PENDING):
                        await self.resolve(frame, ins.arg)
                        break
            elif op is _FLUSH:
                await self.barrier(frame)
                await self.flush()
            elif op is _FOR:
                await self.run_for(frame, ins.arg, ins)
            elif op is _YIELD:
                ec = ins.arg
                await self.resolve(frame, ec.reads)
                # as if in textual order: a step of this iteration started before the
                # `yield` that fails means the yield never happened (a `catch` around it
                # must not see both)
                await self.barrier(frame, upto=frame.yield_scope)
                if frame.yields is not None:
                    frame.yields.append(self.eval(ec, slots, ins, frame))
            elif op is _PARALLEL:
                sub = frame.child(scope=Scope(frame.scope, parallel=True), group=object())
                await self.exec_code(ins.arg, sub)
                await self.end_scope(sub.scope)
            elif op is _TRY:
                await self.run_try(frame, ins.arg, ins)
            elif op is _TX:
                await self.run_tx(frame, ins.arg)
            elif op is _SLEEP:
                await self.run_sleep(frame, ins.arg, ins)
            elif op is _WAIT:
                await self.run_wait(frame, ins.arg, ins)
            elif op is _EMIT:
                name, ec, key = ins.arg
                full = frame.prefix + key
                value = None
                if ec is not None:
                    await self.resolve(frame, ec.reads)
                    value = self.eval(ec, slots, ins, frame)
                if full not in self.recorded:
                    self.event("emit", full, {"name": name, "data": value})
                    self.record(full, True, None)
            elif op is _RETURN:
                ec = ins.arg
                value = None
                if ec is not None:
                    for s in ec.reads:
                        if isinstance(slots[s], _PENDING):
                            await self.resolve(frame, ec.reads)
                            break
                    value = self.eval(ec, slots, ins, frame)
                if code is frame.wf.code:
                    return _Return(value)
                raise _Return(value)
            elif op is _FAIL:
                kind, ec = ins.arg
                await self.resolve(frame, ec.reads)
                msg = R.text(self.eval(ec, slots, ins, frame))
                raise KflowError(kind, self.redact(msg), frame.prefix.rstrip("."),
                                 f"{Path(frame.wf.file).name}:{ins.line}")
            else:  # pragma: no cover
                raise RuntimeError(f"unknown opcode {op}")

    def eval(self, ec, slots: list, ins: B.Instr | None, frame: Frame) -> Any:
        try:
            return ec.fn()(slots, R)
        except KflowError as exc:
            if not exc.step:
                exc.step = frame.prefix.rstrip(".")
            if not exc.where and ins is not None:
                exc.where = f"{Path(frame.wf.file).name}:{ins.line}"
            raise
        except (TypeError, KeyError, AttributeError, ValueError, OverflowError) as exc:
            where = f" at {Path(frame.wf.file).name}:{ins.line}" if ins is not None else ""
            kind = "IndexError" if isinstance(exc, KeyError) else "TypeError"
            raise KflowError(kind, f"{type(exc).__name__}: {exc}{where}",
                             frame.prefix.rstrip(".")) from None

    async def _deferred_value(self, frame: Frame, ec, pend: list, ins) -> Any:
        for p in pend:
            await p
        await self.resolve(frame, ec.reads)
        return self.eval(ec, frame.slots, ins, frame)

    async def resolve(self, frame: Frame, reads) -> None:
        slots = frame.slots
        for s in reads:
            v = slots[s]
            if isinstance(v, _PENDING):
                try:
                    slots[s] = await v
                except _Aborted:
                    # the step never ran because an earlier one of its scope failed:
                    # that failure is what the program sees
                    failed = frame.scope.chain_failure()
                    if failed is not None:
                        raise failed from None
                    raise

    def _note_failure(self, scope: Scope):
        def cb(task: asyncio.Task) -> None:
            if task.cancelled():
                return
            exc = task.exception()
            if isinstance(exc, KflowError):
                _note(scope, exc)
        return cb

    async def end_scope(self, scope: Scope) -> None:
        """Wait for every task of the scope; raise its first failure."""
        for t in scope.tasks:
            if not t.done():
                await asyncio.wait([t])
        for t in scope.tasks:
            if t.cancelled():
                continue
            exc = t.exception()
            if exc is None or isinstance(exc, _Aborted):
                continue
            if isinstance(exc, KflowError):
                _note(scope, exc)
                continue
            raise exc  # Park from a sub-workflow, or an internal error
        if scope.failed is not None:
            raise scope.failed

    async def barrier(self, frame: Frame, effects_only: bool = False,
                      upto: Scope | None = None) -> None:
        """Wait for every step this workflow invocation has in flight — or, around
        control flow, only for those with effects (§6: effects never cross it); with
        ``upto``, only for those of the scopes from the frame's up to that one."""
        while True:
            live = []
            s: Scope | None = frame.scope
            while s is not None:
                if not (effects_only and s.parallel):
                    tasks = s.effect_tasks if effects_only else s.tasks
                    live.extend(t for t in tasks if not t.done())
                s = None if s is upto else s.parent
            if not live:
                break
            await asyncio.wait(live)
        failed = frame.scope.chain_failure()
        if failed is not None:
            raise failed
        s = frame.scope
        while s is not None:
            for t in (s.effect_tasks if effects_only else s.tasks):
                if t.done() and not t.cancelled() and isinstance(t.exception(), Park):
                    raise t.exception()  # a sub-workflow parked on a wait or sleep
            s = None if s is upto else s.parent

    # -- steps ---------------------------------------------------------------------
    def start_step(self, frame: Frame, spec: B.StepSpec) -> None:
        slots = frame.slots
        pend = [slots[s] for s in spec.reads if isinstance(slots[s], _PENDING)]
        if not pend and not spec.effects and spec.fallback is None and spec.kind == "node":
            fast = self._inline(frame, spec)
            if fast is not _NOT_INLINE:
                slots[spec.slot] = fast
                return
        frame.counter[0] += 1
        pos = frame.order + (frame.counter[0],)
        preds = self.conflicting(spec.effects, frame, pos)
        task = asyncio.ensure_future(self.step_task(frame, spec, pend,
                                                    [f.task for f in preds], pos))
        slots[spec.slot] = task
        frame.scope.tasks.append(task)
        task.add_done_callback(self._note_failure(frame.scope))
        if spec.effects:
            frame.scope.effect_tasks.append(task)
            if frame.group is None and not frame.par and preds:
                # a pred whose every effect this step writes over is now implied by this
                # step (anyone conflicting with it conflicts with us, and we wait for it)
                covered = {f for f in preds if _covers(spec.effects, f.effects)}
                if covered:
                    self.inflight = [f for f in self.inflight if f not in covered]
            self.inflight.append(_InFlight(task, spec.effects, _membership(frame, pos),
                                           frame.tx, pos))
            if len(self.inflight) > 64:
                self.inflight = [f for f in self.inflight if not f.task.done()]

    def _inline(self, frame: Frame, spec: B.StepSpec) -> Any:
        """A pure, synchronous node whose inputs are ready runs right here (§12)."""
        node = self.prog.nodes[spec.target]
        if node.retry is not None and node.retry.attempts > 1 or spec.retry is not None \
                or node.timeout_ms or spec.timeout_ms or node.circuit_breaker or node.bulkhead:
            return _NOT_INLINE
        try:
            impl = N.load_impl(node)
        except KflowError:
            return _NOT_INLINE
        if impl.is_async:
            return _NOT_INLINE
        slots = frame.slots
        if spec.when is not None and not self.eval(spec.when, slots, None, frame):
            return None
        args = self.args_of(frame, spec, node.params)
        key = frame.prefix + spec.key
        if impl.wants_ctx:
            args["ctx"] = N.StepContext(self.run_id, key, 1, f"{self.run_id}:{key}",
                                        self.base_dir, self._logger(key))
        try:
            value = impl.fn(**args)
        except KflowError as exc:
            raise KflowError(exc.kind, exc.message, exc.step or key) from None
        except Exception as exc:
            kind, msg = N.describe_exception(exc)
            raise KflowError(kind, self.redact(msg), key) from None
        try:
            return V.checker(node.result)(value, node.name)
        except T.ValueMismatch as exc:
            raise KflowError("TypeError", f"node `{node.name}` returned a value that does not "
                             f"match its result type: {exc}", key) from None

    def conflicting(self, effects: frozenset, frame: Frame, pos: tuple) -> list[_InFlight]:
        """Steps in flight, earlier in program order, whose effects conflict (§6)."""
        if not effects:
            return []
        out = []
        writes = any(e == "write" for e, _ in effects)
        mine = _membership(frame, pos)
        for f in self.inflight:
            if f.task.done() or f.task in frame.ancestors or not f.pos < pos:
                continue
            if mine and f.par and any(f.par.get(g, b) != b for g, b in mine.items()):
                continue  # another statement of a `parallel { }` (or loop iteration)
            if conflicts(f.effects, effects) or (
                    frame.tx is not None and f.tx is frame.tx and writes
                    and any(e == "write" for e, _ in f.effects)):
                out.append(f)
        return out

    async def step_task(self, frame: Frame, spec: B.StepSpec, pend: list, preds: list,
                        pos: tuple = ()) -> Any:
        try:
            return await self._step_task(frame, spec, pend, preds, pos)
        except KflowError as exc:
            if getattr(exc, "pos", None) is None:
                exc.pos = pos  # type: ignore[attr-defined]
            if not exc.where:  # map the failure back to the statement (as Jinja2 does)
                exc.where = f"{Path(frame.wf.file).name}:{spec.line}"
            raise

    async def _step_task(self, frame: Frame, spec: B.StepSpec, pend: list, preds: list,
                         pos: tuple = ()) -> Any:
        slots = frame.slots
        for p in pend:
            await p  # a failed dependency fails this step with the same error
        for p in preds:
            if not p.done():
                await asyncio.wait((p,))
        if frame.scope.chain_failure() is not None:
            raise _Aborted()
        for s in spec.reads:
            v = slots[s]
            if isinstance(v, _PENDING):
                slots[s] = v.result()
        if spec.when is not None and not self.eval(spec.when, slots, None, frame):
            return None
        try:
            return await self.call(frame, spec, pos)
        except KflowError as exc:
            if spec.fallback is None:
                raise
            frame.run.event("fallback", frame.prefix + spec.key, {"error": exc.to_dict()})
            return await self.call(frame, spec.fallback, pos)

    def args_of(self, frame: Frame, spec: B.StepSpec, params: list[B.RuntimeParam]) -> dict:
        slots = frame.slots
        args = {}
        for name, ec in spec.args:
            args[name] = self.eval(ec, slots, None, frame)
        for p in params:
            if p.name not in args:
                if p.default is not None:
                    args[p.name] = p.default.fn()([None], R)
                elif T.is_optional(p.type):
                    args[p.name] = None
        return args

    async def call(self, frame: Frame, spec: B.StepSpec, pos: tuple = ()) -> Any:
        if spec.kind == "workflow":
            return await self.call_workflow(frame, spec, pos)
        node = self.prog.nodes[spec.target]
        args = self.args_of(frame, spec, node.params)
        key = frame.prefix + spec.key
        value = await self.run_node(node, args, key, frame, spec.retry, spec.timeout_ms)
        tx = frame.tx
        if tx is not None and node.effect == "write" and tx.pattern == "saga":
            tx.completed.append((key, node, args, value))
            if node.compensate is None:
                tx.pivot_done = True  # §8: once the pivot succeeds the saga is done
        return value

    async def call_workflow(self, frame: Frame, spec: B.StepSpec, pos: tuple = ()) -> Any:
        if spec.retry is None and spec.timeout_ms is None:
            return await self._call_once(frame, spec, pos, frame.prefix + spec.key + ".")
        return await self._call_with_policy(frame, spec, pos)

    async def _call_once(self, frame: Frame, spec: B.StepSpec, pos: tuple, prefix: str,
                         timeout_ms: int | None = None) -> Any:
        wf = self.prog.workflows[spec.target]
        args = self.args_of(frame, spec, wf.params)
        slots: list = [None] * wf.nslots
        for i, p in enumerate(wf.params):
            slots[i + 1] = args.get(p.name)
        me = asyncio.current_task()
        sub = Frame(self, wf, slots, prefix, Scope(), None, None,
                    frame.ancestors | {me} if me is not None else frame.ancestors)
        sub.order = pos
        sub.par = _membership(frame, pos)
        if timeout_ms is None:
            return await self.run_workflow_frame(sub)
        try:
            return await asyncio.wait_for(self.run_workflow_frame(sub), timeout_ms / 1000)
        except asyncio.TimeoutError:
            for t in sub.scope.tasks:  # the callee's steps still running stop too
                t.cancel()
            raise

    async def _call_with_policy(self, frame: Frame, spec: B.StepSpec, pos: tuple) -> Any:
        """A workflow call with a statement `@retry`/`@timeout` (§5: like a node call).

        Attempt n > 1 runs the callee under the key prefix `<key>#n.`, and each failed
        attempt is journaled as `<key>#attempt<n>`: a resumed run replays the same
        attempts (a timeout is a decision of the process that saw it)."""
        key = frame.prefix + spec.key
        policy = spec.retry if spec.retry is not None else N.NO_RETRY
        attempt = 0
        while True:
            attempt += 1
            mark = f"{key}#attempt{attempt}"
            rec = self.recorded.get(mark)
            if rec is not None:
                v = rec[1]
                last = KflowError(v.get("kind", "StepFailed"), v.get("message", ""),
                                  v.get("step", key))
            else:
                prefix = f"{key}." if attempt == 1 else f"{key}#{attempt}."
                try:
                    return await self._call_once(frame, spec, pos, prefix, spec.timeout_ms)
                except asyncio.TimeoutError:
                    last = KflowError("Timeout", f"call `{key}` ({spec.label}) timed out "
                                      f"after {_fmt_ms(spec.timeout_ms)}", key)
                except KflowError as exc:
                    last = exc
                self.record(mark, False, last.to_dict())
            if last.kind in N.NOT_RETRIED or attempt >= max(1, policy.attempts):
                raise last
            if rec is None:  # a replayed attempt was announced when it happened
                self.event("step.retried", key, {"attempt": attempt,
                                                 "error": last.to_dict()})
                delay = N.backoff_delay(policy, attempt)
                if delay > 0:
                    await asyncio.sleep(delay)

    async def run_node(self, node: B.RuntimeNode, args: dict, key: str, frame: Frame,
                       retry_override=None, timeout_override=None, method: str | None = None,
                       compensating: bool = False) -> Any:
        """Run one journaled node call (replaying its recorded outcome when there is one)."""
        rec = self.recorded.get(key)
        if rec is None and self.cancel_requested and not compensating:
            # `kflow cancel`: stop before doing anything new; replayed steps still replay
            # so open sagas and 2pc blocks are rebuilt and can be undone
            raise KflowError("Cancelled", "the run was cancelled", key)
        tx = frame.tx
        two_pc = (method is None and node.transactional is not None)
        if rec is not None:
            ok, value = rec
            if two_pc and tx is not None and tx.pattern == "2pc" and ok:
                tx.prepared.append((key, node))
            if ok:
                return V.checker(node.result, from_json=True)(value, "") \
                    if node.effect != "pure" else value
            err = KflowError(value.get("kind", "StepFailed"), value.get("message", ""),
                             value.get("step", key))
            raise err
        if two_pc and tx is not None and tx.pattern == "2pc":
            method = "prepare"
            # journaled before the prepare runs: after a crash, recovery aborts every
            # participant that may hold a change, also those of loops and try blocks
            # whose keys cannot be known without running the block
            intent = f"{key}.intent"
            if intent not in self.recorded:
                self.record(intent, True, {"tx": tx.key, "node": node.qualname})
        if node.effect == "write" or two_pc:
            if self.pending or self.pending_events:
                await self.flush()
        policy = N.retry_policy(node, retry_override)
        timeout_ms = timeout_override if timeout_override is not None else node.timeout_ms
        breaker = N.breaker_for(node)
        bulkhead = N.bulkhead_for(node)
        try:
            impl = N.load_impl(node, method) if node.impl else None
        except KflowError as exc:
            err = KflowError(exc.kind, exc.message, key)
            if node.effect != "pure":
                self.record(key, False, err.to_dict(), 0, time.time())
            raise err from None
        started = time.time()
        attempt = 0
        last: KflowError | None = None
        while attempt < max(1, policy.attempts):
            attempt += 1
            ctx = N.StepContext(self.run_id, key, attempt, f"{self.run_id}:{key}",
                                self.base_dir, self._logger(key))
            try:
                if breaker is not None:
                    breaker.before(node.name)
                if impl is None:
                    raise KflowError("StepFailed", f"node `{node.name}` has no @impl")
                if bulkhead is not None:
                    async with bulkhead:
                        value = await N.invoke(node, impl, dict(args), ctx, timeout_ms)
                else:
                    value = await N.invoke(node, impl, dict(args), ctx, timeout_ms)
                if breaker is not None:
                    breaker.success()
                try:
                    value = V.checker(node.result)(value, node.name)
                except T.ValueMismatch as exc:
                    raise KflowError("TypeError", f"node `{node.name}` returned a value that "
                                     f"does not match its result type: {exc}", key) from None
                self.steps_run += 1
                if node.effect != "pure":
                    self.record(key, True, V.encoder(node.result)(value), attempt, started)
                    self.event("step.completed", key, {"attempts": attempt})
                if two_pc and tx is not None and tx.pattern == "2pc":
                    tx.prepared.append((key, node))
                elif two_pc and tx is None:
                    await self._finish_single(node, key)
                return value
            except asyncio.TimeoutError:
                last = KflowError("Timeout", f"step `{key}` ({node.name}) timed out after "
                                  f"{_fmt_ms(timeout_ms)}", key)
            except asyncio.CancelledError:
                raise
            except KflowError as exc:
                last = KflowError(exc.kind, exc.message, exc.step or key)
            except Exception as exc:  # the implementation raised
                kind, msg = N.describe_exception(exc)
                last = KflowError(kind, self.redact(msg), key)
            if breaker is not None and last.kind != "CircuitOpen":
                breaker.failure()
            if last.kind in N.NOT_RETRIED or attempt >= policy.attempts:
                break
            self.event("step.retried", key, {"attempt": attempt, "error": last.to_dict()})
            delay = N.backoff_delay(policy, attempt)
            if delay > 0:
                await asyncio.sleep(delay)
        assert last is not None
        if node.effect != "pure":
            self.record(key, False, last.to_dict(), attempt, started)
            self.event("step.failed", key, {"error": last.to_dict()})
        raise last

    async def _finish_single(self, node: B.RuntimeNode, key: str) -> None:
        """A @transactional node outside a 2pc block: prepare, then commit at once."""
        await self.call_participant(node, key, "commit")

    async def call_participant(self, node: B.RuntimeNode, key: str, method: str) -> None:
        rkey = f"{key}.{method}"
        if rkey in self.recorded:
            return
        impl = N.load_impl(node, method)
        ctx = N.StepContext(self.run_id, key, 1, f"{self.run_id}:{key}", self.base_dir,
                            self._logger(key))
        attempts = 0
        while True:
            attempts += 1
            try:
                await N.invoke(node, impl, {}, ctx, node.timeout_ms)
                break
            except Exception as exc:  # commit/abort must eventually succeed
                if attempts >= 5:
                    kind, msg = N.describe_exception(exc)
                    raise KflowError("StepFailed", f"{method} of `{key}` failed: {msg}",
                                     key) from None
                await asyncio.sleep(0.05 * attempts)
        self.record(rkey, True, None)
        self.event(f"tx.{method}", key)

    def _logger(self, key: str):
        def log(msg: str) -> None:
            self.event("log", key, {"message": self.redact(msg)})
        return log

    # -- loops, try, transactions ------------------------------------------------
    async def run_for(self, frame: Frame, spec: B.ForSpec, ins: B.Instr) -> None:
        await self.resolve(frame, spec.iterable.reads)
        items = R.iterate(self.eval(spec.iterable, frame.slots, ins, frame))
        items = list(items)
        results: list[list] = [[] for _ in items]
        group = object() if spec.concurrency > 1 else frame.group
        frame.counter[0] += 1
        loop_pos = frame.order + (frame.counter[0],)
        loop_scope = Scope(frame.scope)

        async def iteration(i: int, item: Any) -> None:
            sub = frame.child(scope=Scope(loop_scope), group=group, copy=True,
                              prefix=f"{frame.prefix}{spec.key}[{i}].")
            sub.slots[spec.var_slot] = item
            sub.yields = results[i]
            sub.yield_scope = sub.scope
            sub.order, sub.counter = loop_pos + (i,), [0]
            try:
                await self.exec_code(spec.body, sub)
                await self.end_scope(sub.scope)
            except KflowError as exc:
                _note(loop_scope, exc)
                raise

        if spec.concurrency <= 1 or len(items) <= 1:
            for i, item in enumerate(items):
                await iteration(i, item)
        else:
            sem = asyncio.Semaphore(spec.concurrency)

            async def guarded(i, item):
                async with sem:
                    if loop_scope.failed is not None:
                        return
                    await iteration(i, item)

            tasks = [asyncio.ensure_future(guarded(i, x)) for i, x in enumerate(items)]
            done = await asyncio.gather(*tasks, return_exceptions=True)
            for r in done:
                if isinstance(r, (_Return, Park)):
                    raise r
                if isinstance(r, BaseException) and not isinstance(r, KflowError):
                    raise r
            if loop_scope.failed is not None:
                raise loop_scope.failed
        if spec.slot is not None:
            frame.slots[spec.slot] = [v for chunk in results for v in chunk]

    async def run_try(self, frame: Frame, spec: B.TrySpec, ins: B.Instr) -> None:
        body_scope = Scope(frame.scope)
        sub = frame.child(scope=body_scope)
        try:
            await self.exec_code(spec.body, sub)
            await self.end_scope(body_scope)
            return
        except KflowError as exc:
            err = await self._first_failure(body_scope, exc)
        if err is frame.scope.chain_failure():
            raise err  # a failure from outside the try body: not ours to handle
        for h in spec.handlers:
            if not h.kinds or err.kind in h.kinds:
                if h.slot is not None:
                    frame.slots[h.slot] = err.to_dict()
                hframe = frame.child(scope=Scope(frame.scope))
                await self.exec_code(h.body, hframe)
                await self.end_scope(hframe.scope)
                return
        raise err

    async def _settle(self, scope: Scope) -> None:
        live = [t for t in scope.tasks if not t.done()]
        if live:
            await asyncio.wait(live)

    async def run_tx(self, frame: Frame, spec: B.TxSpec) -> None:
        key = frame.prefix + spec.key
        tx = TxState(spec, key)
        scope = Scope(frame.scope)
        sub = frame.child(scope=scope, tx=tx)
        if spec.pattern == "2pc":
            await self.run_2pc(frame, sub, tx)
            return
        try:
            await self.exec_code(spec.body, sub)
            await self.end_scope(scope)
        except KflowError as exc:
            await self._settle(scope)
            if not tx.pivot_done:
                await self.compensate(frame, tx, exc)
            raise exc

    async def compensate(self, frame: Frame, tx: TxState, original: KflowError) -> None:
        """Undo completed steps in reverse order; each compensation is journaled."""
        not_undone: list[str] = []
        failure: KflowError | None = None
        self.event("saga.compensating", tx.key, {"error": original.to_dict()})
        for key, node, args, result in reversed(tx.completed):
            if node.compensate is None:
                continue  # the pivot (or a step that needs no undo)
            comp = self.prog.nodes[node.compensate]
            available = dict(args)
            if isinstance(result, dict):
                available.update(result)
            cargs = {p.name: available[p.name] for p in comp.params if p.name in available}
            try:
                await self.run_node(comp, cargs, f"{key}.compensate",
                                    frame.child(scope=Scope(), tx=None), compensating=True)
            except KflowError as exc:
                failure = failure or exc
                not_undone.append(key)
        if failure is not None:
            raise KflowError("CompensationFailed",
                             f"compensation failed ({failure.message}); not undone: "
                             + ", ".join(not_undone), tx.key)

    async def run_2pc(self, frame: Frame, sub: Frame, tx: TxState) -> None:
        begin, decision_key = f"{tx.key}.begin", f"{tx.key}.decision"
        resumed_open = begin in self.recorded and decision_key not in self.recorded
        if begin not in self.recorded:
            self.record(begin, True, None)
        decision = self.recorded.get(decision_key)
        if resumed_open:
            # §8: after a crash, no recorded decision means abort
            self.collect_participants(sub, tx)
            await self.abort_all(tx)
            self.record(decision_key, True, "abort")
            raise KflowError("TransactionAborted", "the process stopped before this 2pc "
                             "transaction recorded its decision; every participant was "
                             "aborted", tx.key)
        returned: _Return | None = None
        try:
            await self.exec_code(tx.spec.body, sub)
            await self.end_scope(sub.scope)
        except _Return as r:  # `return` inside the block: it ends, then commits
            await self._settle(sub.scope)
            returned = r
        except KflowError as exc:
            await self._settle(sub.scope)
            if decision is None or decision[1] != "commit":
                await self.abort_all(tx)
                self.record(decision_key, True, "abort")
                raise exc
            raise
        await self._decide_2pc(tx, decision, decision_key)
        if returned is not None:
            raise returned

    async def _decide_2pc(self, tx: TxState, decision, decision_key: str) -> None:
        if decision is None:
            self.record(decision_key, True, "commit")
            await self.flush()  # the decision is durable before any commit
        elif decision[1] == "abort":
            await self.abort_all(tx)
            raise KflowError("TransactionAborted", "the transaction was aborted", tx.key)
        for key, node in tx.prepared:
            await self.call_participant(node, key, "commit")

    def collect_participants(self, sub: Frame, tx: TxState) -> None:
        """Every participant a crashed 2pc may have prepared, without running anything.

        A prepare that was running when the process died left no record but may have
        held a change: abort is called for it too (participants must tolerate an abort
        of something they never prepared, as they tolerate repeated calls).
        """
        for ins in tx.spec.body.instrs:
            if ins.op is _STEP:
                spec = ins.arg
                key = sub.prefix + spec.key
                node = self.prog.nodes.get(spec.target)
                if node is not None and node.transactional:
                    tx.prepared.append((key, node))
        known = {k for k, _ in tx.prepared}
        for k, (ok, v) in list(self.recorded.items()):
            if k.endswith(".intent") and isinstance(v, dict) and v.get("tx") == tx.key:
                key = k[:-len(".intent")]
                node = self.prog.nodes.get(v.get("node", ""))
                if node is not None and key not in known:
                    known.add(key)
                    tx.prepared.append((key, node))

    async def abort_all(self, tx: TxState) -> None:
        for key, node in reversed(tx.prepared):
            await self.call_participant(node, key, "abort")

    # -- time and signals ------------------------------------------------------------
    async def run_sleep(self, frame: Frame, arg, ins: B.Instr) -> None:
        ec, key = arg
        full = frame.prefix + key
        rec = self.recorded.get(full)
        if rec is None:
            await self.resolve(frame, ec.reads)
            ms = self.eval(ec, frame.slots, ins, frame)
            if self.cancel_requested:
                raise KflowError("Cancelled", "the run was cancelled", full)
            wake_at = time.time() + ms / 1000.0
            self.record(full, True, {"wake_at": wake_at})
            self.event("sleeping", full, {"until": wake_at})
            await self.flush()
        else:
            wake_at = rec[1]["wake_at"]
        if self.cancel_requested and wake_at > time.time():
            raise KflowError("Cancelled", "the run was cancelled", full)
        await self._until(wake_at, f"sleep at line {ins.line}")

    async def _until(self, wake_at: float, reason: str) -> None:
        while True:
            now = time.time()
            if wake_at <= now:
                return
            if self.cancel_requested:
                raise KflowError("Cancelled", "the run was cancelled", "")
            if wake_at > self.block_deadline:
                raise Park(wake_at, reason)
            await asyncio.sleep(min(wake_at - now, 0.25))
            if self.cancel_requested:
                raise KflowError("Cancelled", "the run was cancelled", "")

    async def run_wait(self, frame: Frame, arg, ins: B.Instr) -> None:
        slot, signal, timeout_ec, key, ptype = arg
        full = frame.prefix + key
        rec = self.recorded.get(full)
        if rec is not None:
            value = T.check_value(T.optional(ptype), rec[1], from_json=True) \
                if rec[1] is not None else None
            if slot is not None:
                frame.slots[slot] = value
            return
        dkey = full + ":deadline"
        drec = self.recorded.get(dkey)
        if drec is None:
            deadline = None
            if timeout_ec is not None:
                await self.resolve(frame, timeout_ec.reads)
                deadline = time.time() + self.eval(timeout_ec, frame.slots, ins, frame) / 1000
            self.record(dkey, True, {"deadline": deadline})
            self.event("waiting", full, {"signal": signal, "deadline": deadline})
            await self.flush()
        else:
            deadline = drec[1]["deadline"]
        while True:
            # a signal sent after the wait's deadline is not its answer (the wait timed
            # out, whenever the run is resumed); a later wait for it may take it
            found = await self.journal.peek_signal(self.run_id, signal, deadline)
            if found is not None:
                sig_id, payload = found
                try:
                    value = T.check_value(ptype, payload, from_json=True)
                except T.ValueMismatch as exc:
                    raise KflowError("TypeError", f"signal `{signal}` payload: {exc}",
                                     full) from None
                self.recorded[full] = (True, payload)
                self.seq += 1
                ev = (self.seq, time.time(), "signalled", full,
                      encode_json({"signal": signal}))
                await self.flush()
                await self.journal.consume_signal(
                    self.run_id, sig_id, full,
                    StepRecord(full, True, encode_json(payload), 1, None, time.time()), [ev])
                if slot is not None:
                    frame.slots[slot] = value
                return
            now = time.time()
            if deadline is not None and now >= deadline:
                self.record(full, True, None)
                self.event("wait.timeout", full, {"signal": signal})
                if slot is not None:
                    frame.slots[slot] = None
                return
            limit = self.block_deadline if deadline is None else min(deadline,
                                                                     self.block_deadline)
            if self.cancel_requested:
                raise KflowError("Cancelled", "the run was cancelled", full)
            if now >= limit:
                raise Park(deadline, f"waiting for signal `{signal}`")
            await asyncio.sleep(min(0.1, max(0.0, limit - now)))


def _fmt_ms(ms: int | None) -> str:
    if ms is None:
        return "?"
    from ..durations import format_duration
    return format_duration(int(ms))


__all__ = ["Run", "Park", "KflowError", "Scope", "Frame"]
