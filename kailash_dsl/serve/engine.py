"""Runs executed by the durable VM inside the server.

The runtime API (:mod:`kailash_dsl.runtime.api`) opens a journal per call and runs one run
per process invocation. A server drives many runs at once in one event loop, so this module
adapts it:

- :class:`ServerJournal` is the runtime's :class:`~kailash_dsl.runtime.journal.SqliteJournal`
  with *group commits across runs*: every run's flush (and every run creation) is queued
  and one writer applies whatever is queued in a single SQLite transaction, so concurrent
  runs share commits. A commit is acknowledged only once written (§7 rule 1 holds). It
  also notifies event-stream listeners and records flush and step latencies.
- :class:`Engine` starts runs (each in its own task, so a client that goes away does not
  stop its run), delivers signals, follows events, and runs a scheduler that resumes, from
  the journal, runs of the served files that are due: a wait whose signal arrived (from
  any channel or `kflow signal`), a timer that expired, a cancel request, and runs left
  `running` by a process that died (the restart-resume of §7).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

from ..runtime import api
from ..runtime.journal import (
    INSERT_EVENT,
    INSERT_RUN,
    INSERT_STEP,
    RUN_UPDATE_COLUMNS,
    JournalError,
    RunRecord,
    SqliteJournal,
    StepRecord,
    encode_json,
    owner_alive,
    owner_id,
    run_row,
    step_row,
    update_run_sql,
)
from ..runtime.vm import Run
from .metrics import Metrics
from .registry import Entry, Registry, check_signal

log = logging.getLogger("kflow.serve")

FINISHED = api.FINISHED


class RunNotFound(Exception):
    pass


class RunFinished(Exception):
    def __init__(self, rec: RunRecord) -> None:
        super().__init__(f"run `{rec.run_id}` is {rec.status}; only running or waiting runs "
                         "take signals")
        self.rec = rec


class RunConflict(Exception):
    pass


# ----------------------------------------------------------------------------- journal


def _rows(items: list, now: float):
    """The batch as grouped rows: run inserts, steps, events, and updates by statement.

    Items are ("create", rec, fut), ("commit", run_id, steps, events, update, fut) and
    ("run", rec, steps, events, update, fut) — a run's creation together with its first
    commit, written as one insert. A run has at most one commit per batch (each flush
    awaits its batch), so grouping updates by statement keeps every run's order.
    """
    runs, steps, events = [], [], []
    updates: dict[str, list] = {}
    for it in items:
        kind = it[0]
        if kind == "create":
            runs.append(run_row(it[1], None, now))
            continue
        if kind == "run":
            rec = it[1]
            run_id = rec.run_id
            update = it[4]
            runs.append(run_row(rec, update, now))
            if update:  # columns the insert does not hold, if any
                update = {k: v for k, v in update.items()
                          if k not in RUN_UPDATE_COLUMNS} or None
        else:
            run_id = it[1]
            update = it[4]
        for st in it[2]:
            steps.append(step_row(run_id, st))
        for e in it[3]:
            events.append((run_id, *e))
        if update:
            updates.setdefault(update_run_sql(update), []).append(
                (*update.values(), now, run_id))
    return runs, steps, events, updates


def _write(con: sqlite3.Connection, items: list) -> None:
    runs, steps, events, updates = _rows(items, time.time())
    if runs:
        con.executemany(INSERT_RUN, runs)
    if steps:
        con.executemany(INSERT_STEP, steps)
    if events:
        con.executemany(INSERT_EVENT, events)
    for sql, rows in updates.items():
        con.executemany(sql, rows)


def _apply_batch(con: sqlite3.Connection, items: list) -> list | None:
    """Write ``items`` in one transaction; on an error, one by one. Per-item errors."""
    try:
        _write(con, items)
        con.commit()
        return None
    except sqlite3.Error:
        con.rollback()
    errors: list = []
    for it in items:
        try:
            _write(con, [it])
            con.commit()
            errors.append(None)
        except sqlite3.Error as exc:
            con.rollback()
            errors.append(exc)
    return errors


_ID_RANDOM = random.SystemRandom() if os.environ.get("KFLOW_SECURE_RUN_IDS") else \
    random.Random(int.from_bytes(os.urandom(16), "big"))


def time_ordered_id() -> str:
    """A UUID (version 7 layout: milliseconds, then random bits) for a new run.

    Ids that grow with time keep the journal's inserts on the right edge of its B-trees,
    which makes a group commit write a few pages instead of one per run.
    """
    ms = time.time_ns() // 1_000_000
    r = _ID_RANDOM.getrandbits(80)  # an os.urandom() call per run cost ~4% of a request
    v = (ms << 80) | (0x7 << 76) | ((r >> 68) << 64) | (0b10 << 62) | (r & ((1 << 62) - 1))
    h = f"{v:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


#: at most this many loop rounds gathering a batch (each ~a few µs when idle)
_GATHER_ROUNDS = 4


class ServerJournal(SqliteJournal):
    """The SQLite journal, shared by every run of the server, with group commits."""

    def __init__(self, path, metrics: Metrics | None = None) -> None:
        super().__init__(path)
        self.metrics = metrics or Metrics()
        self._queue: list[tuple] = []
        self._wake: asyncio.Event | None = None
        self._writer: asyncio.Task | None = None
        self._closing = False
        self._listeners: dict[str, set[asyncio.Event]] = {}
        self._wconn: sqlite3.Connection | None = None
        self._deferred: dict[str, RunRecord] = {}
        #: called with (run_id, steps) after each group commit (OpenTelemetry step spans)
        self.on_steps = None
        self._checkpointer: asyncio.Task | None = None

    async def open(self) -> ServerJournal:
        await super().open()
        # Group commits are written on the event loop's own thread through a second
        # connection: a batch is ~0.4 ms of SQLite, less than a hop to aiosqlite's thread
        # costs under load. That connection never checkpoints the WAL (which fsyncs);
        # :meth:`_checkpoint_loop` does, on aiosqlite's thread.
        try:
            self._wconn = sqlite3.connect(str(self.path), isolation_level=None,
                                          check_same_thread=False)
            self._wconn.execute("PRAGMA journal_mode=WAL")
            self._wconn.execute("PRAGMA synchronous=NORMAL")
            self._wconn.execute("PRAGMA busy_timeout=10000")
            self._wconn.execute("PRAGMA wal_autocheckpoint=0")
            self._wconn.isolation_level = ""
        except sqlite3.Error as exc:
            await super().close()
            raise JournalError(f"cannot use the journal {self.path}: {exc}") from None
        self._wake = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._writer = loop.create_task(self._write_loop())
        self._checkpointer = loop.create_task(self._checkpoint_loop())
        return self

    async def close(self) -> None:
        self._closing = True
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            self._checkpointer = None
        if self._writer is not None and self._wake is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), 10)
            except (TimeoutError, Exception):  # pragma: no cover - best effort
                self._writer.cancel()
            self._writer = None
        if self._wconn is not None:
            self._wconn.close()
            self._wconn = None
        if self.conn is not None:
            try:
                await self._run(lambda con: con.execute("PRAGMA wal_checkpoint(PASSIVE)"))
            except Exception:  # pragma: no cover - best effort
                pass
        await super().close()

    async def _checkpoint_loop(self, every: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self._run(lambda con: con.execute("PRAGMA wal_checkpoint(PASSIVE)"))
            except asyncio.CancelledError:
                raise
            except Exception:  # pragma: no cover - a busy database: next time
                pass

    # -- queued writes -------------------------------------------------------------
    def _enqueue(self, item: tuple) -> asyncio.Future:
        if self._writer is None:
            raise JournalError("the journal is closed")
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((*item, fut))
        self._wake.set()  # type: ignore[union-attr]
        return fut

    def defer_create(self, rec: RunRecord) -> None:
        """Create the run with its first commit, as one insert.

        Only for runs that cannot touch the outside world before that commit (no write
        step): if the process dies first, nothing happened that a record could resume.
        """
        self._deferred[rec.run_id] = rec

    def drop_deferred(self, run_id: str) -> None:
        self._deferred.pop(run_id, None)

    async def create_run(self, rec: RunRecord) -> None:
        await self._enqueue(("create", rec))

    async def commit(self, run_id: str, steps: list[StepRecord], events: list[tuple],
                     run_update: dict | None = None) -> None:
        rec = self._deferred.pop(run_id, None) if self._deferred else None
        if rec is not None:
            await self._enqueue(("run", rec, steps, events, run_update))
        else:
            await self._enqueue(("commit", run_id, steps, events, run_update))

    async def _write_loop(self) -> None:
        assert self._wake is not None
        metrics = self.metrics
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queue:
                if self._closing:
                    return
                continue
            # Let the runs that are about to commit join this batch: yield to the loop
            # while the queue still grows (a few rounds at most). Under load a commit then
            # carries about every run in flight instead of half of them, and a commit's
            # fixed cost (its WAL pages) is shared by twice as many runs.
            queued = len(self._queue)
            for _ in range(_GATHER_ROUNDS):
                await asyncio.sleep(0)
                if len(self._queue) == queued:
                    break
                queued = len(self._queue)
            batch, self._queue = self._queue, []
            t0 = time.perf_counter()
            try:
                errors = _apply_batch(self._wconn, batch)
            except Exception as exc:  # the connection itself failed
                errors = [exc] * len(batch)
            metrics.flush.observe(time.perf_counter() - t0)
            metrics.flush_batch.observe(len(batch))
            touched: set[str] = set()
            for i, it in enumerate(batch):
                fut: asyncio.Future = it[-1]
                err = errors[i] if errors else None
                if not fut.done():
                    if err is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(JournalError(f"journal write failed: {err}"))
                if it[0] == "create":
                    touched.add(it[1].run_id)
                else:
                    rid = it[1].run_id if it[0] == "run" else it[1]
                    touched.add(rid)
                    for s in it[2]:
                        if s.started_at and s.finished_at:
                            metrics.steps.observe(max(0.0, s.finished_at - s.started_at))
                    if self.on_steps is not None and it[2]:
                        try:
                            self.on_steps(rid, it[2])
                        except Exception:  # pragma: no cover - tracing never stops a run
                            log.exception("recording step spans failed")
            self._notify(touched)
            if self._queue:
                self._wake.set()

    # -- listeners (event streams) ------------------------------------------------
    def listen(self, run_id: str, ev: asyncio.Event) -> None:
        self._listeners.setdefault(run_id, set()).add(ev)

    def unlisten(self, run_id: str, ev: asyncio.Event) -> None:
        s = self._listeners.get(run_id)
        if s is not None:
            s.discard(ev)
            if not s:
                del self._listeners[run_id]

    def _notify(self, run_ids) -> None:
        if not self._listeners:
            return
        for rid in run_ids:
            for ev in self._listeners.get(rid, ()):
                ev.set()

    async def consume_signal(self, run_id, signal_id, key, step, events) -> None:
        await super().consume_signal(run_id, signal_id, key, step, events)
        self._notify((run_id,))


# ------------------------------------------------------------------------------ engine


class Engine:
    """Starts, resumes, signals and follows runs of the registry's workflows."""

    def __init__(self, registry: Registry, db, *, block_for: float = 1.0,
                 metrics: Metrics | None = None, poll: float = 0.25, tracer=None) -> None:
        self.registry = registry
        self.db = db
        self.block_for = block_for
        self.metrics = metrics or Metrics()
        self.poll = poll
        self.journal = ServerJournal(db, self.metrics)
        self.me = owner_id()
        self.active: dict[str, asyncio.Task] = {}
        #: runs started here and still being driven, for cancel requests seen by scan()
        self.driving: dict[str, Run] = {}
        self.rewake: set[str] = set()
        self.seen_signal: dict[str, int] = {}
        self.refused: set[str] = set()
        self.resume_errors: dict[str, int] = {}
        self.closing = False
        #: set from the signal handler on SIGINT/SIGTERM: event streams end
        self.draining = False
        self._scheduler: asyncio.Task | None = None
        self._opened = False
        #: the environment runs started here read with env() (§10): the server's, as it
        #: was at startup; one snapshot instead of a copy per run
        self.environ = dict(os.environ)
        #: the `started` event's data per (workflow, channel), encoded once
        self._started: dict[tuple[str, str], str] = {}
        #: OpenTelemetry spans (None unless a tracer provider is configured)
        self.spans = None
        self._tracer = tracer

    # -- lifecycle -----------------------------------------------------------------
    async def open(self) -> Engine:
        try:
            await self.journal.open()
        except JournalError as exc:
            from . import StartupError
            raise StartupError(str(exc)) from None
        self._opened = True
        from . import otel

        t = self._tracer if self._tracer is not None else otel.tracer()
        if t is not None:
            self.spans = otel.Spans(t)
            self.journal.on_steps = self.spans.steps
        self._scheduler = asyncio.get_running_loop().create_task(self._schedule_loop())
        return self

    async def close(self, grace: float = 10.0) -> None:
        """Stop: no new runs; let active runs reach a step boundary, else leave them
        ``running`` in the journal (the next start resumes them)."""
        if not self._opened:
            return
        self.closing = True
        if self._scheduler is not None:
            self._scheduler.cancel()
            try:
                await self._scheduler
            except (asyncio.CancelledError, Exception):
                pass
        live = [t for t in self.active.values() if not t.done()]
        if live:
            _, pending = await asyncio.wait(live, timeout=grace)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
                log.warning("left %d run(s) running; they resume on the next start",
                            len(pending))
        await self.journal.close()
        self._opened = False

    # -- starting runs -------------------------------------------------------------
    async def start(self, e: Entry, values: dict, input_json: Any, *,
                    run_id: str | None = None, channel: str = "rest",
                    encoded: bool = False, input_text: str | None = None):
        """Run ``e`` with checked ``values``; its result, or its state once it waits.

        With ``encoded``, ``(result, output JSON text or None)``: the text the journal
        recorded, so an answer need not encode the output again. ``input_text``, when
        given, is ``input_json`` as JSON text (the request body), journaled as it is.

        The run is driven in the caller's task (uvicorn does not cancel a request whose
        client went away; a cancelled caller — shutdown — leaves the run ``running`` in
        the journal, and the next start resumes it).
        """
        if self.closing:
            raise api.CannotStart("the server is shutting down")
        j = self.journal
        now = time.time()
        if run_id is not None:
            existing = await j.get_run(run_id)
            if existing is not None or run_id in self.active:
                if existing is None:
                    raise RunConflict(f"run `{run_id}` is starting already")
                if existing.workflow != e.qualname or existing.input != input_json:
                    raise RunConflict(f"run `{run_id}` already exists for a different "
                                      "workflow or input")
                if existing.status not in FINISHED:
                    self.wake(run_id)
                return (existing.result(), None) if encoded else existing.result()
            rid = run_id
        else:
            rid = time_ordered_id()
        rec = RunRecord(rid, e.qualname, e.prog.program_hash, e.prog.path, input_json,
                        "running", None, None, self.me, None, now, now,
                        input_text=input_text)
        run = Run(e.prog, e.rwf, rid, j, {}, self.block_for, environ=self.environ)
        started = self._started.get((e.qualname, channel))
        if started is None:
            started = self._started[e.qualname, channel] = encode_json(
                {"workflow": e.qualname, "channel": channel})
        run.event_json("started", None, started)
        me = asyncio.current_task()
        self.active[rid] = me  # type: ignore[assignment]
        self.driving[rid] = run
        deferred = e.deferrable and run_id is None
        spans = self.spans
        result = None
        try:
            if spans is not None:
                spans.start_run(rid, e.qualname, channel)
            if deferred:
                j.defer_create(rec)
            else:
                await j.create_run(rec)
            self.metrics.started.inc(channel)
            result = await self._guard(rid, api.execute_run(run, values,
                                                            watch_cancel=False), run)
            if encoded:
                return result, run.output_json
            return result
        finally:
            if spans is not None:
                spans.end_run(rid, result)
            if deferred:
                j.drop_deferred(rid)
            self.driving.pop(rid, None)
            if self.active.get(rid) is me:
                del self.active[rid]

    async def _guard(self, rid: str, coro, run: Run | None = None) -> dict | None:
        try:
            out = await coro
            if out is None:
                return None
            self.metrics.finished.inc(out.status)
            return out.result
        except api.CannotStart as exc:
            if "another live process" not in exc.message and rid not in self.refused:
                self.refused.add(rid)
                log.warning("cannot resume run %s: %s", rid, exc.message)
            return None
        except Exception as exc:
            # Not the workflow's own failure (those are results): the interpreter or a
            # resource gave out (MemoryError on a huge range(), a journal error...). A
            # resume is tried again (a busy journal, another server claiming the run at
            # the same moment...) up to three times; then, like a run started here, the
            # run fails with kind InternalError instead of being retried forever.
            log.exception("run %s stopped on an internal error", rid)
            if run is None:
                n = self.resume_errors[rid] = self.resume_errors.get(rid, 0) + 1
                if n < 3:
                    return None
            self.refused.add(rid)
            err = {"kind": "InternalError", "message": f"{type(exc).__name__}: {exc}"[:500],
                   "step": ""}
            update = {"status": "failed", "error": json.dumps(err), "owner": None,
                      "wake_at": None}
            try:
                if run is not None:
                    run.event("failed", None, err)
                    await run.flush(update)
                else:
                    await self.journal.commit(rid, [], [], update)
            except Exception:  # pragma: no cover - the journal itself is gone
                log.exception("cannot record the failure of run %s", rid)
            self.metrics.finished.inc("failed")
            return {"run_id": rid, "status": "failed", "output": None, "error": err}
        finally:
            if self.active.get(rid) is asyncio.current_task():
                del self.active[rid]
            if rid in self.rewake:
                self.rewake.discard(rid)
                if not self.closing:
                    self.wake(rid)

    # -- resuming ------------------------------------------------------------------
    def wake(self, rid: str) -> None:
        """Resume run ``rid`` here if it is due (a no-op for finished or foreign runs)."""
        if self.closing:
            return
        if rid in self.active:
            self.rewake.add(rid)
            return
        self.active[rid] = asyncio.get_running_loop().create_task(
            self._guard(rid, self._resume(rid)))

    async def _resume(self, rid: str):
        j = self.journal
        rec = await j.get_run(rid)
        if rec is None or rec.status in FINISHED:
            return None
        prog = self.registry.program_for(rec.source_path)
        if prog is None:
            return None
        if rec.status == "waiting":
            due = (rec.wake_at is not None and rec.wake_at <= time.time()) \
                or rec.cancel_requested or await j.pending_signals(rid) > 0
            if not due:
                return None
        elif rec.owner and rec.owner != self.me and owner_alive(rec.owner):
            return None
        spans = self.spans
        if spans is not None:
            spans.start_run(rid, rec.workflow, "resume")
        out = None
        try:
            out = await api.drive_resume(j, rec, prog, self.block_for, False,
                                          cancel=rec.cancel_requested)
            return out
        finally:
            if spans is not None:
                spans.end_run(rid, out.result if out is not None else None)

    async def _schedule_loop(self) -> None:
        while not self.closing:
            try:
                await self.scan()
            except asyncio.CancelledError:
                raise
            except Exception:  # pragma: no cover - keep scheduling
                log.exception("scheduler scan failed")
            await asyncio.sleep(self.poll)

    async def scan(self) -> list[str]:
        """Wake every run of the served files that is due; return their ids."""
        now = time.time()
        woken = []
        for rid, status, owner, wake_at, cancel, max_sig in \
                await self.journal.candidates(self.registry.files):
            if cancel and rid in self.driving:
                # `kflow cancel` from anywhere: the run stops at its next step boundary
                self.driving[rid].cancel_requested = True
            if rid in self.active or rid in self.refused:
                continue
            if status == "running":
                if owner and owner != self.me and owner_alive(owner):
                    continue
            else:
                due = (wake_at is not None and wake_at <= now) or bool(cancel)
                if max_sig and max_sig > self.seen_signal.get(rid, 0):
                    self.seen_signal[rid] = max_sig
                    due = True
                if not due:
                    continue
            woken.append(rid)
            self.wake(rid)
        return woken

    # -- signals and reading -------------------------------------------------------
    async def get(self, rid: str) -> RunRecord | None:
        return await self.journal.get_run(rid)

    def program_of(self, rec: RunRecord):
        prog = self.registry.program_for(rec.source_path)
        if prog is None:
            try:
                prog = api.load(rec.source_path)
            except api.CannotStart:
                prog = None
        return prog

    async def signal(self, rid: str, name: str, payload: Any) -> RunRecord:
        rec = await self.journal.get_run(rid)
        if rec is None:
            raise RunNotFound(rid)
        if rec.status in FINISHED:
            raise RunFinished(rec)
        check_signal(self.program_of(rec), name, payload, rid)
        await self.journal.add_signal(rid, name, payload)
        if rec.status == "waiting" or rid in self.active:
            self.wake(rid)
        return rec

    async def follow(self, rid: str, after: int = 0,
                     stop: asyncio.Event | None = None) -> AsyncIterator[tuple[str, Any]]:
        """Yield ("event", event) for each event after ``after``, then ("end", record) once
        the run finished. Stops early (without "end") when ``stop`` is set."""
        j = self.journal
        ev = asyncio.Event()
        j.listen(rid, ev)
        try:
            while True:
                ev.clear()
                for e in await j.load_events(rid, after):
                    after = e["seq"]
                    yield "event", e
                rec = await j.get_run(rid)
                if rec is None:
                    return
                if rec.status in FINISHED:
                    for e in await j.load_events(rid, after):
                        after = e["seq"]
                        yield "event", e
                    yield "end", rec
                    return
                if self.closing or self.draining or (stop is not None and stop.is_set()):
                    return
                try:
                    await asyncio.wait_for(ev.wait(), timeout=0.5)
                except TimeoutError:
                    pass
        finally:
            j.unlisten(rid, ev)

    async def wait_for(self, rid: str, timeout: float) -> RunRecord | None:
        """The run once it finished, or as it is after ``timeout`` seconds."""
        deadline = time.monotonic() + max(0.0, timeout)
        j = self.journal
        ev = asyncio.Event()
        j.listen(rid, ev)
        try:
            while True:
                ev.clear()
                rec = await j.get_run(rid)
                left = deadline - time.monotonic()
                if rec is None or rec.status in FINISHED or left <= 0 or self.closing:
                    return rec
                try:
                    await asyncio.wait_for(ev.wait(), timeout=min(left, 0.5))
                except TimeoutError:
                    pass
        finally:
            j.unlisten(rid, ev)

    async def run_counts(self) -> dict[str, int]:
        return await self.journal.count_by_status()


def run_view(rec: RunRecord) -> dict:
    """A run as the REST API and `get_run` show it (the OpenAPI `Run` schema)."""
    out = {"run_id": rec.run_id, "workflow": rec.workflow, "status": rec.status,
           "output": rec.output, "error": rec.error}
    if rec.status == "waiting" and rec.wake_at is not None:
        out["wake_at"] = rec.wake_at
    return out
