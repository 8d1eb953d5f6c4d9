"""The runtime's library API: start, resume, signal and inspect runs.

The CLI (and later the server) call these; they never print. Problems that stop a run
from starting raise :class:`CannotStart` (exit 2 in the CLI) with one clear sentence, or
carry diagnostics when the program itself has errors.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..compiler import bytecode as B
from ..compiler import types as T
from ..compiler import validators as V
from ..diagnostics import Diagnostic
from .journal import JournalError, RunRecord, SqliteJournal, encode_json, owner_id
from . import values as R
from .nodes import ensure_path
from .values import KflowError
from .vm import Park, Run, _Aborted

FINISHED = ("completed", "failed", "cancelled")


class CannotStart(Exception):
    """The run cannot start or continue; ``diagnostics`` when the program has errors."""

    def __init__(self, message: str, diagnostics: list[Diagnostic] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.diagnostics = diagnostics or []


@dataclass
class Outcome:
    result: dict
    run: Run | None = None
    stats: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.result["status"]

    @property
    def exit_code(self) -> int:
        return {"completed": 0, "failed": 1, "cancelled": 1, "waiting": 3}.get(self.status, 1)


def load(path: str | Path, *, use_cache: bool = True) -> B.CompiledProgram:
    from ..compiler.pipeline import compile_file

    p = Path(path)
    if not p.exists():
        raise CannotStart(f"file not found: {path}")
    if p.is_dir():
        raise CannotStart(f"{path} is a folder; name a .kflow file")
    prog, diags = compile_file(p, use_cache=use_cache)
    if prog is None:
        errors = sum(1 for d in diags if d.is_error)
        raise CannotStart(f"{path} has {errors} error{'s' if errors != 1 else ''}; "
                          "fix them first (kflow check)", diags)
    ensure_path(prog.module_dirs)
    return prog


def pick_workflow(prog: B.CompiledProgram, name: str | None) -> B.RuntimeWorkflow:
    if name:
        wf = prog.find_workflow(name)
        if wf is None:
            names = [prog.workflows[q].name for q in prog.entry_workflows]
            from ..diagnostics import did_you_mean

            hint = did_you_mean(name, names)
            extra = f"; did you mean `{hint}`?" if hint else ""
            raise CannotStart(f"no workflow named `{name}` in {prog.path}{extra} "
                              f"(workflows: {', '.join(names) or 'none'})")
        return wf
    if len(prog.entry_workflows) == 1:
        return prog.workflows[prog.entry_workflows[0]]
    names = [prog.workflows[q].name for q in prog.entry_workflows]
    if not names:
        raise CannotStart(f"{prog.path} declares no workflow to run")
    raise CannotStart(f"{prog.path} declares {len(names)} workflows ({', '.join(names)}); "
                      "choose one with --workflow NAME")


def fast_input(wf: B.RuntimeWorkflow, data: Any) -> dict | None:
    """Well-formed JSON input → runtime values, or None to ask the full check for the
    error (a served request takes this path: one compiled check per parameter)."""
    def build() -> tuple:
        params = tuple((p.name, V.checker(p.type, from_json=True), p.default,
                        T.is_optional(p.type)) for p in wf.params)
        return params, frozenset(p.name for p in wf.params)

    params, known = V.cached(wf, "input", build)
    if type(data) is not dict:
        return None
    for k in data:
        if k not in known:
            return None
    out = {}
    for name, check, default, optional in params:
        if name in data:
            try:
                out[name] = check(data[name], name)
            except T.ValueMismatch:
                return None
        elif default is not None:
            out[name] = default.fn()([None], R)
        elif optional:
            out[name] = None
        else:
            return None
    return out


def input_problems(wf: B.RuntimeWorkflow, data: Any) -> tuple[dict, list[dict]]:
    """JSON input → (runtime values, every problem as ``{field, expected, found,
    message}``): the rules `kflow run` and the server share, in the order they report."""
    if not isinstance(data, dict):
        found = T.describe_value(data)
        msg = (f"the input must be a JSON object with the parameters of `{wf.name}`, "
               f"found {found}")
        return {}, [{"field": "", "expected": "object", "found": found, "message": msg}]
    errors: list[dict] = []
    known = {p.name for p in wf.params}
    for k in data:
        if k not in known:
            from ..diagnostics import did_you_mean

            hint = did_you_mean(k, known)
            extra = f"; did you mean `{hint}`?" if hint else ""
            takes = ", ".join(f"{p.name}: {p.type.show()}" for p in wf.params) or "nothing"
            errors.append({"field": k, "expected": "no such field", "found": "a value",
                           "message": f"input field `{k}` is not a parameter of "
                                      f"`{wf.name}`{extra} (it takes {takes})"})
    out: dict[str, Any] = {}
    for p in wf.params:
        if p.name in data:
            try:
                out[p.name] = T.check_value(p.type, data[p.name], p.name, from_json=True)
            except T.ValueMismatch as exc:
                errors.append({"field": exc.path or p.name, "expected": exc.expected.show(),
                               "found": T.describe_value(exc.found),
                               "message": f"input field {exc}"})
        elif p.default is not None:
            out[p.name] = p.default.fn()([None], R)
        elif T.is_optional(p.type):
            out[p.name] = None
        else:
            errors.append({"field": p.name, "expected": p.type.show(), "found": "nothing",
                           "message": f"input field `{p.name}` is missing: `{wf.name}` "
                                      f"needs `{p.name}: {p.type.show()}`"})
    return out, errors


def validate_input(wf: B.RuntimeWorkflow, data: Any) -> dict:
    """JSON input → runtime values; a clear error naming the (first bad) field otherwise."""
    fast = fast_input(wf, data)
    if fast is not None:
        return fast
    out, errors = input_problems(wf, data)
    if errors:
        raise CannotStart(errors[0]["message"])
    return out


def parse_input(text: str | None, file: str | None) -> Any:
    if text is not None and file is not None:
        raise CannotStart("give either --input or --input-file, not both")
    if file is not None:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise CannotStart(f"cannot read --input-file {file}: {exc.strerror}") from None
    if text is None or not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CannotStart(f"--input is not valid JSON: {exc.msg} at line {exc.lineno} "
                          f"column {exc.colno}") from None


async def open_journal(db: str | Path) -> SqliteJournal:
    try:
        return await SqliteJournal(db).open()
    except JournalError as exc:
        raise CannotStart(str(exc)) from None


async def start(path: str, workflow: str | None, input_data: Any, *, run_id: str | None,
                db: str | Path, block_for: float, use_cache: bool = True) -> Outcome:
    prog = load(path, use_cache=use_cache)
    wf = pick_workflow(prog, workflow)
    values = validate_input(wf, input_data)
    journal = await open_journal(db)
    try:
        rid = run_id or str(uuid.uuid4())
        existing = await journal.get_run(rid)
        if existing is not None:
            if existing.status in FINISHED:
                return Outcome(existing.result())
            if existing.workflow != wf.qualname or existing.input != input_data:
                raise CannotStart(f"run `{rid}` already exists for a different workflow or "
                                  f"input; resume it with `kflow resume {rid}` or pick "
                                  "another --run-id")
            return await _drive_resume(journal, existing, prog, block_for, False)
        now = time.time()
        rec = RunRecord(rid, wf.qualname, prog.program_hash, prog.path, input_data,
                        "running", None, None, owner_id(), None, now, now)
        try:
            await journal.create_run(rec)
        except Exception as exc:  # sqlite3.IntegrityError: another process took the id
            raise CannotStart(f"run `{rid}` was created by another process just now; "
                              f"resume it with `kflow resume {rid}`") from exc
        run = Run(prog, wf, rid, journal, {}, block_for)
        run.event("started", None, {"workflow": wf.qualname})
        return await _execute(run, values)
    finally:
        await journal.close()


_INDEX = re.compile(r"\[\d+\]")
#: a retried workflow call's attempt: `r#2.step`, `r#attempt1`
_ATTEMPT = re.compile(r"#(attempt)?\d+(?=\.|$)")
_SUFFIX = re.compile(r"(\.compensate|\.else|\.commit|\.abort|\.decision|\.begin|\.intent|"
                     r":deadline|"
                     r":\w+#\d+)$")


def _keys_compatible(prog: B.CompiledProgram, recorded: list[str]) -> list[str]:
    """Recorded step keys the changed program can no longer produce."""
    known: set[str] = set()
    for wf in prog.workflows.values():
        known |= set(wf.step_keys)
    missing = []
    for k in recorded:
        if k.startswith("$"):
            continue
        norm = _SUFFIX.sub("", _ATTEMPT.sub("", _INDEX.sub("[*]", k)))
        if norm in known or any(norm.endswith("." + x) or norm == x for x in known):
            continue
        missing.append(k)
    return missing


async def resume(run_id: str, *, db: str | Path, block_for: float,
                 allow_changed: bool = False) -> Outcome:
    journal = await open_journal(db)
    try:
        rec = await journal.get_run(run_id)
        if rec is None:
            raise CannotStart(f"no run `{run_id}` in {db}")
        if rec.status in FINISHED:
            return Outcome(rec.result())
        prog = load(rec.source_path)
        return await _drive_resume(journal, rec, prog, block_for, allow_changed)
    finally:
        await journal.close()


async def _drive_resume(journal, rec: RunRecord, prog: B.CompiledProgram, block_for: float,
                        allow_changed: bool, cancel: bool = False) -> Outcome:
    wf = prog.workflows.get(rec.workflow) or prog.find_workflow(rec.workflow.rsplit(".", 1)[-1])
    if wf is None:
        raise CannotStart(f"run `{rec.run_id}`: workflow `{rec.workflow}` no longer exists "
                          f"in {rec.source_path}")
    recorded = await journal.load_steps(rec.run_id)
    if prog.program_hash != rec.program_hash:
        missing = _keys_compatible(prog, list(recorded))
        if not allow_changed:
            from ..diagnostics import error
            from ..grammar.ast import Span

            d = error("E0601", f"resume refused: {rec.source_path} changed since run "
                      f"`{rec.run_id}` started (program {rec.program_hash} → "
                      f"{prog.program_hash})", Span(rec.source_path, wf.line, 1, wf.line, 1),
                      help="resume with --allow-changed if the journaled steps still exist "
                           "under the same keys")
            raise CannotStart(d.message, [d])
        if missing:
            raise CannotStart(f"resume refused even with --allow-changed: the changed "
                              f"program no longer has steps {', '.join(missing[:5])}")
    refused = await journal.claim(rec.run_id, owner_id())
    if refused == "missing":
        raise CannotStart(f"no run `{rec.run_id}`")
    if refused:
        raise CannotStart(f"run `{rec.run_id}` is being driven by another live process "
                          f"({refused}); wait for it or stop it first")
    values = validate_input(wf, rec.input)
    seq = await journal.next_seq(rec.run_id)
    run = Run(prog, wf, rec.run_id, journal, recorded, block_for, seq)
    run.cancel_requested = cancel or rec.cancel_requested
    run.event("resumed", None, {"recorded_steps": len(recorded)})
    return await _execute(run, values)


async def _watch_cancel(run: Run) -> None:
    """Notice `kflow cancel` from another process (the journal is the channel)."""
    while not run.cancel_requested:
        await asyncio.sleep(0.25)
        try:
            if await run.journal.cancel_requested(run.run_id):
                run.cancel_requested = True
        except Exception:
            return


class _CancelWatch:
    """Starts the journal poll for `kflow cancel` only once a run outlives 0.25 s: most
    runs (a served pure workflow) finish long before and never pay for a task."""

    def __init__(self, run: Run) -> None:
        self.task: asyncio.Task | None = None
        self.timer = asyncio.get_running_loop().call_later(0.25, self._start, run)

    def _start(self, run: Run) -> None:
        self.task = asyncio.ensure_future(_watch_cancel(run))

    def cancel(self) -> None:
        self.timer.cancel()
        if self.task is not None:
            self.task.cancel()


async def _execute(run: Run, values: dict, watch_cancel: bool = True) -> Outcome:
    """Drive a run to its outcome. ``watch_cancel=False`` when the caller (a server
    driving many runs) notices `kflow cancel` requests itself and sets
    ``run.cancel_requested``."""
    wf = run.wf
    rid = run.run_id
    watcher = _CancelWatch(run) if watch_cancel else None
    try:
        value = await run.execute(values)
    except KflowError as exc:
        err = {"kind": exc.kind, "message": run.redact(exc.message), "step": exc.step or ""}
        await _settle_inflight(run)
        status = "cancelled" if exc.kind == "Cancelled" and run.cancel_requested else "failed"
        run.event(status, err["step"] or None, err)
        await run.flush({"status": status, "error": json.dumps(err), "owner": None,
                         "wake_at": None})
        out = Outcome({"run_id": rid, "status": status, "output": None, "error": err}, run)
        out.result["where"] = exc.where
        return out
    except _Aborted:  # pragma: no cover - a failure the VM did not attribute
        err = {"kind": "StepFailed", "message": "a step was abandoned after an earlier "
               "failure", "step": ""}
        await run.flush({"status": "failed", "error": json.dumps(err), "owner": None})
        return Outcome({"run_id": rid, "status": "failed", "output": None, "error": err}, run)
    except Park as park:
        if run.cancel_requested:
            err = {"kind": "Cancelled", "message": "the run was cancelled", "step": ""}
            run.event("cancelled", None, err)
            await run.flush({"status": "cancelled", "error": json.dumps(err), "owner": None,
                             "wake_at": None})
            return Outcome({"run_id": rid, "status": "cancelled", "output": None,
                            "error": err}, run)
        run.event("parked", None, {"reason": park.reason, "wake_at": park.wake_at})
        await run.flush({"status": "waiting", "wake_at": park.wake_at, "owner": None})
        return Outcome({"run_id": rid, "status": "waiting", "output": None, "error": None,
                        "waiting_for": park.reason, "wake_at": park.wake_at}, run)
    finally:
        if watcher is not None:
            watcher.cancel()
    try:
        output = V.encoder(wf.result)(V.checker(wf.result)(value, "result"))
    except T.ValueMismatch as exc:
        err = {"kind": "TypeError", "message": f"the workflow's result does not match "
               f"`{wf.result.show()}`: {exc}", "step": ""}
        await run.flush({"status": "failed", "error": json.dumps(err), "owner": None})
        return Outcome({"run_id": rid, "status": "failed", "output": None, "error": err}, run)
    output = run.redact(output)
    try:
        output_json = encode_json(output, strict=True)
    except ValueError:
        err = {"kind": "TypeError", "message": "the workflow's result holds a float that is "
               "not finite (infinity or NaN), which JSON cannot represent", "step": ""}
        await run.flush({"status": "failed", "error": json.dumps(err), "owner": None})
        return Outcome({"run_id": rid, "status": "failed", "output": None, "error": err}, run)
    run.event("completed", None, None)
    run.output_json = output_json
    await run.flush({"status": "completed", "output": run.output_json, "owner": None,
                     "wake_at": None})
    return Outcome({"run_id": rid, "status": "completed", "output": output, "error": None},
                   run)


async def _settle_inflight(run: Run) -> None:
    live = [f.task for f in run.inflight if not f.task.done()]
    if live:
        await asyncio.wait(live, timeout=30)


async def cancel(run_id: str, *, db: str | Path, wait_s: float = 30.0) -> Outcome:
    """Stop a run: compensate an open saga, abort an undecided 2pc, status `cancelled`.

    A run driven by another live process is asked through the journal and stops at its
    next step boundary; a waiting (or abandoned) run is driven here to its cancellation.
    """
    from .journal import owner_alive

    journal = await open_journal(db)
    try:
        rec = await journal.get_run(run_id)
        if rec is None:
            raise CannotStart(f"no run `{run_id}` in {db}")
        if rec.status in FINISHED:
            raise CannotStart(f"run `{run_id}` is already {rec.status}")
        await journal.request_cancel(run_id)
        if rec.status == "running" and rec.owner and rec.owner != owner_id() \
                and owner_alive(rec.owner):
            deadline = time.time() + wait_s
            while time.time() < deadline:
                await asyncio.sleep(0.1)
                cur = await journal.get_run(run_id)
                if cur is not None and cur.status != "running":
                    return Outcome(cur.result())
            raise CannotStart(f"asked run `{run_id}` to cancel, but its process "
                              f"({rec.owner}) has not stopped it within {wait_s:.0f}s")
        prog = load(rec.source_path)
        rec.cancel_requested = True
        return await _drive_resume(journal, rec, prog, 0.0, True, cancel=True)
    finally:
        await journal.close()


async def follow(run_id: str, db: str | Path, on_event, poll_s: float = 0.2) -> RunRecord:
    """Call ``on_event(event)`` for every event of the run, live, until it finishes."""
    journal = await open_journal(db)
    try:
        rec = await journal.get_run(run_id)
        if rec is None:
            raise CannotStart(f"no run `{run_id}` in {db}")
        seq = 0
        while True:
            # read the status first: events written before it are then all in the table
            rec = await journal.get_run(run_id)
            for e in await journal.load_events(run_id, seq):
                seq = e["seq"]
                on_event(e)
            if rec is None or rec.status in FINISHED:
                return rec
            await asyncio.sleep(poll_s)
    finally:
        await journal.close()


async def signal(run_id: str, name: str, payload: Any, *, db: str | Path) -> str:
    """Deliver a signal; it is kept until the run's matching `wait` takes it."""
    journal = await open_journal(db)
    try:
        rec = await journal.get_run(run_id)
        if rec is None:
            raise CannotStart(f"no run `{run_id}` in {db}")
        if rec.status in FINISHED:
            raise CannotStart(f"run `{run_id}` is {rec.status}; only running or waiting runs "
                              "take signals")
        try:
            prog = load(rec.source_path)
        except CannotStart:
            prog = None
        if prog is not None:
            types = [w.waits[name] for w in prog.workflows.values() if name in w.waits]
            if not types:
                names = sorted({n for w in prog.workflows.values() for n in w.waits})
                raise CannotStart(f"run `{run_id}` never waits for a signal named `{name}` "
                                  f"(it waits for: {', '.join(names) or 'nothing'})")
            try:
                T.check_value(types[0], payload, "data", from_json=True)
            except T.ValueMismatch as exc:
                raise CannotStart(f"signal `{name}` payload does not match "
                                  f"`{types[0].show()}`: {exc}; the run keeps waiting") from None
        await journal.add_signal(run_id, name, payload)
        return rec.status
    finally:
        await journal.close()


async def list_runs(db: str | Path, status: str | None = None) -> list[RunRecord]:
    journal = await open_journal(db)
    try:
        return await journal.list_runs(status)
    finally:
        await journal.close()


async def show(run_id: str, db: str | Path) -> tuple[RunRecord, list[dict], list[dict]]:
    journal = await open_journal(db)
    try:
        rec = await journal.get_run(run_id)
        if rec is None:
            raise CannotStart(f"no run `{run_id}` in {db}")
        steps = await journal.load_step_rows(run_id)
        events = await journal.load_events(run_id)
        return rec, steps, events
    finally:
        await journal.close()


#: Public names for embedding the runtime (``kflow serve`` drives runs through these).
execute_run = _execute
drive_resume = _drive_resume
