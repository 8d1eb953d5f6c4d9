"""The `kflow` command line: thin Typer commands over the library API.

Each command imports what it needs inside its body so that `kflow check` stays fast
(no asyncio/aiosqlite/emitters imported on that path). Exit codes follow ruff: 0 clean,
1 problems found (or a failed run), 2 usage error / cannot start, 3 run waiting.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import __version__

app = typer.Typer(
    name="kflow",
    help="kflow — a typed, durable workflow language.\n\n"
         "Check a file:  kflow check orders.kflow\n\n"
         "Run it:        kflow run orders.kflow --input '{\"id\": \"o1\"}'",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kflow {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """kflow — a typed, durable workflow language."""


@app.command()
def check(
    paths: List[str] = typer.Argument(..., metavar="PATH",
                                      help="Files or folders (every .kflow below)."),
    format: str = typer.Option("human", "--format", metavar="FORMAT",
                               help="human | json | github | sarif"),
    explain: bool = typer.Option(False, "--explain", help="Also say which pattern each "
                                 "transaction got and why."),
) -> None:
    """Type-check .kflow files and report every problem.

    Exit status: 0 clean (warnings allowed), 1 errors found, 2 usage error.

    Examples:

      kflow check orders.kflow

      kflow check src/ --format json

      kflow check . --format github     # annotations in GitHub Actions

      kflow check . --format sarif > kflow.sarif

      kflow check orders.kflow --explain
    """
    from .launcher import run_check

    raise typer.Exit(run_check(list(paths), format, explain))


@app.command()
def fmt(
    paths: List[str] = typer.Argument(..., metavar="PATH",
                                      help="Files or folders (every .kflow below); - for stdin."),
    check: bool = typer.Option(False, "--check", help="Change nothing; exit 1 and list the "
                               "files that would be reformatted."),
    diff: bool = typer.Option(False, "--diff", help="Change nothing; print a unified diff "
                              "of what would change (exit 1 if anything would)."),
) -> None:
    """Format .kflow files in the one canonical style, keeping every comment.

    The output is parsed again and compared with the input; a file whose meaning would
    change, or that has a syntax error, is left untouched (exit 1).

    Examples:

      kflow fmt .

      kflow fmt --check src/        # in CI

      kflow fmt --diff orders.kflow

      cat orders.kflow | kflow fmt -
    """
    from .format import run_fmt

    raise typer.Exit(run_fmt(list(paths), check=check, diff=diff))


@app.command()
def run(
    file: str = typer.Argument(..., metavar="FILE", help="The .kflow file."),
    workflow: Optional[str] = typer.Option(None, "--workflow", "-w",
                                           help="Which workflow (default: the file's only one)."),
    input: Optional[str] = typer.Option(None, "--input", "-i", help="Input as a JSON object."),
    input_file: Optional[str] = typer.Option(None, "--input-file", help="Read the input JSON "
                                             "from a file."),
    run_id: Optional[str] = typer.Option(None, "--run-id", help="Name the run (default: a new "
                                         "UUID). Running a finished id returns its result."),
    db: Optional[str] = typer.Option(None, "--db", help="Journal file (default "
                                     ".kflow/runs.db, or $KFLOW_DB)."),
    block_for: str = typer.Option("30s", "--block-for", help="How long to block on a "
                                  "wait/sleep before reporting `waiting` (exit 3)."),
    format: str = typer.Option("human", "--format", help="human | json"),
) -> None:
    """Run a workflow durably: a killed run resumes where it stopped.

    Exit status: 0 completed, 1 failed, 2 cannot start (program errors, bad input),
    3 waiting on a signal or timer.

    Examples:

      kflow run orders.kflow --input '{"id": "o1"}'

      kflow run orders.kflow --input-file order.json --run-id order-o1 --format json

      kflow resume order-o1          # after a crash, or once a signal arrived
    """
    from .run_commands import cmd_run

    raise typer.Exit(cmd_run(file, workflow, input, input_file, run_id, db, block_for, format))


@app.command()
def resume(
    run_id: str = typer.Argument(..., metavar="RUN_ID"),
    db: Optional[str] = typer.Option(None, "--db", help="Journal file."),
    block_for: str = typer.Option("30s", "--block-for", help="How long to block on a "
                                  "wait/sleep before reporting `waiting`."),
    allow_changed: bool = typer.Option(False, "--allow-changed", help="Resume even though the "
                                       "program changed, if journaled step keys still exist."),
    format: str = typer.Option("human", "--format", help="human | json"),
) -> None:
    """Continue a run from its journal (after a crash, a signal, or a timer).

    Steps whose outcome is recorded are not run again. The program is reloaded from the
    path recorded in the journal; a changed program is refused (E0601).
    """
    from .run_commands import cmd_resume

    raise typer.Exit(cmd_resume(run_id, db, block_for, allow_changed, format))


@app.command()
def signal(
    run_id: str = typer.Argument(..., metavar="RUN_ID"),
    name: str = typer.Argument(..., metavar="NAME", help="The signal a `wait` is waiting for."),
    data: Optional[str] = typer.Option(None, "--data", help="Payload as JSON (checked against "
                                       "the wait's declared type)."),
    db: Optional[str] = typer.Option(None, "--db", help="Journal file."),
) -> None:
    """Send a signal to a run; it is kept until the run's `wait` takes it.

    Example: kflow signal order-o1 approval --data '{"approved": true, "by": "ops"}'
    """
    from .run_commands import cmd_signal

    raise typer.Exit(cmd_signal(run_id, name, data, db))


@app.command()
def runs(
    db: Optional[str] = typer.Option(None, "--db", help="Journal file."),
    status: Optional[str] = typer.Option(None, "--status", help="Only runs with this status "
                                         "(running, waiting, completed, failed)."),
    format: str = typer.Option("human", "--format", help="human | json"),
) -> None:
    """List runs in the journal, newest first."""
    from .run_commands import cmd_runs

    raise typer.Exit(cmd_runs(db, status, format))


@app.command()
def show(
    run_id: str = typer.Argument(..., metavar="RUN_ID"),
    db: Optional[str] = typer.Option(None, "--db", help="Journal file."),
    format: str = typer.Option("human", "--format", help="human | json"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Stream events live until the "
                                "run ends."),
) -> None:
    """Show a run's timeline: steps, retries, waits, events, result."""
    from .run_commands import cmd_show

    raise typer.Exit(cmd_show(run_id, db, format, follow))


@app.command()
def cancel(
    run_id: str = typer.Argument(..., metavar="RUN_ID"),
    db: Optional[str] = typer.Option(None, "--db", help="Journal file."),
    format: str = typer.Option("human", "--format", help="human | json"),
) -> None:
    """Cancel a running or waiting run.

    It stops at its next step boundary (even when another process drives it), an open
    saga is compensated, an undecided 2pc is aborted, and the status becomes `cancelled`.
    """
    from .run_commands import cmd_cancel

    raise typer.Exit(cmd_cancel(run_id, db, format))


@app.command()
def dis(
    file: str = typer.Argument(..., metavar="FILE"),
    workflow: Optional[str] = typer.Option(None, "--workflow", "-w", help="Only this workflow."),
    no_pass: List[str] = typer.Option([], "--no-pass", help="Switch an optimisation pass off "
                                      "(repeatable): fold_constants, eliminate_dead_pure, "
                                      "schedule_effects, lower_transactions, place_checkpoints."),
) -> None:
    """Disassemble the compiled bytecode, like Python's `dis`.

    Shows, per instruction: source line, offset, opcode, operand and a readable form;
    step starts with the slots they wait for, journal flushes, transaction patterns.
    """
    from .run_commands import cmd_dis

    raise typer.Exit(cmd_dis(file, workflow, no_pass))


@app.command()
def graph(
    file: str = typer.Argument(..., metavar="FILE"),
    workflow: Optional[str] = typer.Option(None, "--workflow", "-w", help="Only this workflow."),
    format: str = typer.Option("mermaid", "--format", help="mermaid | dot"),
) -> None:
    """Draw the workflow graph: steps, data edges, effect order, checkpoints."""
    from .run_commands import cmd_graph

    raise typer.Exit(cmd_graph(file, workflow, format))


@app.command()
def emit(
    target: str = typer.Argument(..., metavar="python|openapi|mcp|jsonschema",
                                 help="What to generate."),
    files: List[Path] = typer.Argument(..., metavar="FILE...", help="The .kflow files."),
    out: Optional[Path] = typer.Option(None, "-o", "--out",
                                       help="Write here instead of stdout."),
) -> None:
    """Generate code or schemas from checked .kflow files.

    Examples:\n
      kflow emit jsonschema orders.kflow -o orders.schema.json\n
      kflow emit openapi orders.kflow payments.kflow -o openapi.json\n
      kflow emit mcp orders.kflow          # the MCP tools/list result\n
      kflow emit python orders.kflow -o orders.py   # the eject: no journal
    """
    from .emit import run_emit

    raise typer.Exit(run_emit(target, [str(f) for f in files], str(out) if out else None))


@app.command()
def lsp(
    stdio: bool = typer.Option(True, "--stdio/--no-stdio", help="Talk LSP over stdin/stdout "
                               "(the only transport; the flag is accepted for editors that "
                               "pass it)."),
) -> None:
    """Run the kflow language server (LSP over stdio) for editors.

    Diagnostics as you type, hover, go to definition, references, completion, document
    symbols, formatting and rename. VS Code: editors/vscode; Neovim: see docs/editors.md.

    Example:

      kflow lsp
    """
    from .lsp import main as lsp_main

    lsp_main()


@app.command()
def doc(
    target: Optional[str] = typer.Argument(None, metavar="[TARGET]",
                                           help="std.http, std.http.Get, file.kflow or "
                                                "file.kflow:Node (default: the std index)."),
) -> None:
    """Show the reference for a module or node: signature, effect, policy, doc comment.

    Examples:

      kflow doc                      # every std module

      kflow doc std.http             # one module

      kflow doc std.sql.Execute      # one node

      kflow doc orders.kflow:Charge  # your own declarations
    """
    from .run_commands import cmd_doc

    raise typer.Exit(cmd_doc(target))



@app.command()
def serve(
    files: List[str] = typer.Argument(None, metavar="FILE...", help="The .kflow files whose "
                                      "workflows to serve."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port; the "
                             "one chosen is printed)."),
    db: Optional[str] = typer.Option(None, "--db", help="Journal file (default "
                                     ".kflow/runs.db, or $KFLOW_DB)."),
    api_keys: Optional[str] = typer.Option(None, "--api-keys", metavar="FILE",
                                           help="API keys (hashed) and their roles; "
                                           "without it every caller may do everything."),
    rate_limit: Optional[str] = typer.Option(None, "--rate-limit", metavar="RATE",
                                             help="Per-key token bucket, e.g. 20/s or 600/m "
                                             "(keys may set their own)."),
    block_for: str = typer.Option("1s", "--block-for", help="How long a request waits for "
                                  "a run on a wait/sleep before answering 202 (waiting)."),
    new_key: Optional[str] = typer.Option(None, "--new-key", metavar="NAME",
                                          help="Make an API key NAME, add its hash to "
                                          "--api-keys FILE, print the key, and exit."),
    role: List[str] = typer.Option([], "--role", help="With --new-key: a role of the key "
                                   "(repeatable; `*` holds every role)."),
) -> None:
    """Serve workflows over REST (OpenAPI), MCP (streamable HTTP at /mcp) and SSE/WebSocket.

    Every workflow of the named files is the REST endpoint `kflow emit openapi` describes
    (docs at /docs) and the MCP tool `kflow emit mcp` lists. Runs are durable: they share
    the journal with `kflow run`, and a restarted server resumes the runs it left running.

    Examples:

      kflow serve orders.kflow approval.kflow --port 8000

      kflow serve --new-key ops-bot --role ops --api-keys keys.json

      kflow serve orders.kflow --api-keys keys.json --rate-limit 20/s
    """
    from .serve.cli import cmd_serve

    raise typer.Exit(cmd_serve(list(files or []), host, port, db, api_keys, rate_limit,
                               block_for, new_key, list(role)))


@app.command(name="mcp")
def mcp_command(
    files: List[str] = typer.Argument(..., metavar="FILE...", help="The .kflow files."),
    db: Optional[str] = typer.Option(None, "--db", help="Journal file (default "
                                     ".kflow/runs.db, or $KFLOW_DB)."),
    block_for: str = typer.Option("1s", "--block-for", help="How long a tool call waits "
                                  "for a run on a wait/sleep before answering its run id."),
) -> None:
    """Serve the workflows as MCP tools over stdio (for a local AI agent).

    The tools are those of `kflow emit mcp`, plus get_run and signal_run. Configure an MCP
    client with the command `kflow mcp orders.kflow`.
    """
    from .serve.cli import cmd_mcp

    raise typer.Exit(cmd_mcp(list(files), db, block_for))


def main(argv: Optional[List[str]] = None) -> None:
    """Run the Typer app (the installed `kflow` script enters via kailash_dsl.launcher)."""
    app(args=argv, prog_name="kflow")
