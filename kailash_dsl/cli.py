"""The `kflow` command line: thin Typer commands over the library API.

Each command imports what it needs inside its body so that `kflow check` stays fast
(no asyncio/aiosqlite/emitters imported on that path). Exit codes follow ruff: 0 clean,
1 problems found (or a failed run), 2 usage error / cannot start, 3 run waiting.
"""

from __future__ import annotations

import sys
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


def main(argv: Optional[List[str]] = None) -> None:
    """Run the Typer app (the installed `kflow` script enters via kailash_dsl.launcher)."""
    app(args=argv, prog_name="kflow")
