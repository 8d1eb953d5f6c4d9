"""What `kflow run/resume/signal/runs/show/dis/graph` do; cli.py only parses options.

Output contract (§12): with ``--format json`` exactly one JSON object on stdout; problems
that stop a run from starting go to stderr as one clear line (or rendered diagnostics)
with exit 2. Human output uses Rich only when stdout is a terminal.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .diagnostics import Diagnostic


def _err(msg: str) -> None:
    sys.stderr.write(f"error: {msg}\n")


def _diags(diags: list[Diagnostic]) -> None:
    from .render import render, want_color

    files = len({d.span.file for d in diags}) or 1
    text = render("human", diags, files, color=want_color(sys.stderr))
    sys.stderr.write(text if text.endswith("\n") else text + "\n")


def parse_duration_opt(text: str, option: str) -> float:
    from .durations import parse_duration

    try:
        return parse_duration(text) / 1000.0
    except ValueError:
        raise SystemExit(_usage(f"{option} takes a duration like 30s, 500ms or 2m, "
                                f"not `{text}`"))


def _usage(msg: str) -> int:
    _err(msg)
    return 2


def _print_result(result: dict, fmt: str, elapsed: float | None = None) -> None:
    if fmt == "json":
        out = {k: result.get(k) for k in ("run_id", "status", "output", "error")}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    status = result["status"]
    took = f" in {elapsed * 1000:.0f} ms" if elapsed is not None else ""
    if status == "completed":
        sys.stdout.write(f"run {result['run_id']} completed{took}\n")
        sys.stdout.write(json.dumps(result.get("output"), indent=2, ensure_ascii=False) + "\n")
    elif status == "failed":
        e = result.get("error") or {}
        step = f" at step `{e.get('step')}`" if e.get("step") else ""
        where = f" ({result['where']})" if result.get("where") else ""
        sys.stdout.write(f"run {result['run_id']} failed{step}{where}{took}\n"
                         f"  {e.get('kind')}: {e.get('message')}\n")
    elif status == "waiting":
        why = result.get("waiting_for") or "a signal or timer"
        sys.stdout.write(f"run {result['run_id']} is waiting ({why}){took}\n"
                         f"  continue it with: kflow resume {result['run_id']}\n")
    else:
        sys.stdout.write(f"run {result['run_id']} is {status}\n")


def _run_async(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        from .runtime.api import CannotStart

        if isinstance(exc, CannotStart) or os.environ.get("KFLOW_DEBUG"):
            raise
        # a bug or an environment failure (disk full...): one clear line, no traceback;
        # the journal keeps the run as it was, so it can be resumed once fixed
        raise CannotStart(f"internal error: {type(exc).__name__}: {exc} (set KFLOW_DEBUG=1 "
                          "for the traceback; the run stays resumable)") from exc
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()


def _progress(fmt: str):
    """A live spinner on a terminal for runs that take more than a second."""
    if fmt != "human" or not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.status import Status

    return Status("running…", console=Console(stderr=True), spinner="dots")


def cmd_run(file: str, workflow: str | None, input_text: str | None, input_file: str | None,
            run_id: str | None, db: str | None, block_for: str, fmt: str) -> int:
    from .runtime import api
    from .runtime.journal import default_db_path

    if fmt not in ("human", "json"):
        return _usage(f"unknown --format `{fmt}` (human, json)")
    block = parse_duration_opt(block_for, "--block-for")
    t0 = time.perf_counter()
    try:
        data = api.parse_input(input_text, input_file)
        status = _progress(fmt)
        coro = api.start(file, workflow, data, run_id=run_id, db=db or default_db_path(),
                         block_for=block)
        if status is not None:
            with _delayed(status):
                outcome = _run_async(coro)
        else:
            outcome = _run_async(coro)
    except api.CannotStart as exc:
        if exc.diagnostics:
            _diags(exc.diagnostics)
        _err(exc.message)
        return 2
    _print_result(outcome.result, fmt, time.perf_counter() - t0)
    return outcome.exit_code


class _delayed:
    """Show a Rich status only if the run outlives one second."""

    def __init__(self, status) -> None:
        self.status = status
        self.timer = None

    def __enter__(self):
        import threading

        self.timer = threading.Timer(1.0, self.status.start)
        self.timer.daemon = True
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.cancel()
        try:
            self.status.stop()
        except Exception:
            pass


def cmd_resume(run_id: str, db: str | None, block_for: str, allow_changed: bool,
               fmt: str) -> int:
    from .runtime import api
    from .runtime.journal import default_db_path

    if fmt not in ("human", "json"):
        return _usage(f"unknown --format `{fmt}` (human, json)")
    block = parse_duration_opt(block_for, "--block-for")
    db_path = Path(db) if db else default_db_path()
    if not db_path.exists():
        return _usage(f"no journal at {db_path}")
    t0 = time.perf_counter()
    try:
        outcome = _run_async(api.resume(run_id, db=db_path, block_for=block,
                                        allow_changed=allow_changed))
    except api.CannotStart as exc:
        if exc.diagnostics:
            _diags(exc.diagnostics)
        else:
            _err(exc.message)
        return 2
    _print_result(outcome.result, fmt, time.perf_counter() - t0)
    return outcome.exit_code


def cmd_signal(run_id: str, name: str, data: str | None, db: str | None) -> int:
    from .runtime import api
    from .runtime.journal import default_db_path

    db_path = Path(db) if db else default_db_path()
    if not db_path.exists():
        return _usage(f"no journal at {db_path}")
    try:
        payload: Any = json.loads(data) if data else None
    except json.JSONDecodeError as exc:
        return _usage(f"--data is not valid JSON: {exc.msg}")
    try:
        status = _run_async(api.signal(run_id, name, payload, db=db_path))
    except api.CannotStart as exc:
        _err(exc.message)
        return 2
    sys.stdout.write(f"signal `{name}` sent to run {run_id} ({status}); "
                     f"`kflow resume {run_id}` continues it\n")
    return 0


def cmd_runs(db: str | None, status: str | None, fmt: str) -> int:
    from .runtime import api
    from .runtime.journal import default_db_path

    db_path = Path(db) if db else default_db_path()
    if not db_path.exists():
        if fmt == "json":
            sys.stdout.write("[]\n")
            return 0
        sys.stdout.write(f"no runs yet (no journal at {db_path})\n")
        return 0
    try:
        runs = _run_async(api.list_runs(db_path, status))
    except api.CannotStart as exc:
        _err(exc.message)
        return 2
    if fmt == "json":
        sys.stdout.write(json.dumps([{
            "run_id": r.run_id, "workflow": r.workflow, "status": r.status,
            "created_at": r.created_at, "updated_at": r.updated_at, "output": r.output,
            "error": r.error} for r in runs], ensure_ascii=False) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("run id", "workflow", "status", "started", "updated")
    for r in runs:
        table.add_row(r.run_id, r.workflow, r.status, _ts(r.created_at), _ts(r.updated_at))
    Console().print(table)
    return 0


def _ts(t: float | None) -> str:
    if not t:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def cmd_cancel(run_id: str, db: str | None, fmt: str) -> int:
    from .runtime import api
    from .runtime.journal import default_db_path

    db_path = Path(db) if db else default_db_path()
    if not db_path.exists():
        return _usage(f"no journal at {db_path}")
    try:
        outcome = _run_async(api.cancel(run_id, db=db_path))
    except api.CannotStart as exc:
        _err(exc.message)
        return 2
    _print_result(outcome.result, fmt)
    return 0 if outcome.status == "cancelled" else 1


def _follow(run_id: str, db_path: Path, fmt: str) -> int:
    from .runtime import api

    def show(e: dict) -> None:
        if fmt == "json":
            sys.stdout.write(json.dumps(e, ensure_ascii=False) + "\n")
        else:
            detail = json.dumps(e["data"], ensure_ascii=False) if e["data"] is not None else ""
            sys.stdout.write(f"{_ts(e['ts'])}  {e['type']:<16} {e['step'] or '':<20} "
                             f"{detail[:100]}\n")
        sys.stdout.flush()

    try:
        rec = _run_async(api.follow(run_id, db_path, show))
    except api.CannotStart as exc:
        _err(exc.message)
        return 2
    except KeyboardInterrupt:
        return 130
    if fmt != "json" and rec is not None:
        sys.stdout.write(f"run {run_id} {rec.status}\n")
    return 0


def cmd_show(run_id: str, db: str | None, fmt: str, follow: bool = False) -> int:
    from .runtime import api
    from .runtime.journal import default_db_path

    db_path = Path(db) if db else default_db_path()
    if not db_path.exists():
        return _usage(f"no journal at {db_path}")
    if follow:
        return _follow(run_id, db_path, fmt)
    try:
        rec, steps_data, events = _run_async(api.show(run_id, db_path))
    except api.CannotStart as exc:
        _err(exc.message)
        return 2
    if fmt == "json":
        sys.stdout.write(json.dumps({"run": rec.result() | {"workflow": rec.workflow},
                                     "steps": steps_data, "events": events},
                                    ensure_ascii=False) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    head = f"[bold]run {rec.run_id}[/bold]  {rec.workflow}  [b]{rec.status}[/b]"
    head += f"  ({(rec.updated_at - rec.created_at):.2f}s)"
    con.print(head)
    if rec.error:
        con.print(f"  [red]{rec.error.get('kind')}[/red]: {rec.error.get('message')}"
                  + (f"  (step `{rec.error.get('step')}`)" if rec.error.get("step") else ""))
    elif rec.status == "completed":
        con.print("  output: " + json.dumps(rec.output, ensure_ascii=False)[:200])
    t0 = rec.created_at
    steps = Table("step", "outcome", "attempts", "started", "took", title="steps",
                  title_justify="left")
    for st in steps_rows(steps_data):
        steps.add_row(*st)
    if steps_data:
        con.print(steps)
    table = Table("time", "event", "step", "detail", title="events", title_justify="left")
    for e in events:
        detail = json.dumps(e["data"], ensure_ascii=False) if e["data"] is not None else ""
        table.add_row(f"+{(e['ts'] - t0) * 1000:.0f}ms", e["type"], e["step"] or "",
                      detail[:80])
    con.print(table)
    return 0


def steps_rows(steps: list[dict]) -> list[tuple[str, ...]]:
    """The steps table of `kflow show`: key, outcome, attempts, start offset, duration."""
    rows = []
    starts = [s["started_at"] for s in steps if s.get("started_at")]
    t0 = min(starts) if starts else None
    for s in steps:
        key = s["key"]
        if key.startswith("$") or ":" in key or key.endswith((".begin", ".decision")):
            continue  # journaled builtins and transaction markers
        if s["ok"]:
            outcome = "ok"
        else:
            err = s.get("value") or {}
            outcome = f"{err.get('kind', 'failed')}: {str(err.get('message', ''))[:60]}"
        started = took = ""
        if s.get("started_at") and t0 is not None:
            started = f"+{(s['started_at'] - t0) * 1000:.0f}ms"
            if s.get("finished_at"):
                took = f"{(s['finished_at'] - s['started_at']) * 1000:.0f}ms"
        rows.append((key, outcome, str(s.get("attempts") or 1), started, took))
    return rows


def cmd_dis(file: str, workflow: str | None, no_pass: list[str]) -> int:
    from .compiler.pipeline import compile_file
    from .compiler.dis import disassemble_program

    prog, diags = compile_file(file, use_cache=False, disabled=tuple(no_pass))
    if prog is None:
        _diags(diags)
        return 2
    sys.stdout.write(disassemble_program(prog, workflow=workflow))
    return 0


def cmd_graph(file: str, workflow: str | None, fmt: str) -> int:
    from .compiler.pipeline import build_ir_for
    from .emit.graph import render_graph

    if fmt not in ("mermaid", "dot"):
        return _usage(f"unknown --format `{fmt}` (mermaid, dot)")
    ir, diags = build_ir_for(file)
    if ir is None:
        _diags(diags)
        return 2
    sys.stdout.write(render_graph(ir, fmt, workflow))
    return 0


def cmd_doc(target: str | None) -> int:
    from .docgen import DocError, render

    try:
        text = render(target)
    except DocError as exc:
        return _usage(str(exc))
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    else:
        sys.stdout.write(text)
    return 0
