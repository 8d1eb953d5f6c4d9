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
    paths: List[Path] = typer.Argument(..., help="Files or folders (every .kflow below)."),
    format: str = typer.Option("human", "--format", help="human | json | github | sarif"),
    explain: bool = typer.Option(False, "--explain", help="Say which pattern each "
                                 "transaction got and why."),
) -> None:
    """Type-check .kflow files and report every problem.

    Examples:\n
      kflow check orders.kflow\n
      kflow check src/ --format json\n
      kflow check . --format github   # annotations in GitHub Actions
    """
    from .compiler.api import check_paths
    from .render import render_json

    if format not in ("human", "json", "github", "sarif"):
        typer.echo(f"error: unknown --format `{format}` (human, json, github, sarif)", err=True)
        raise typer.Exit(2)
    result = check_paths([str(p) for p in paths], explain=explain)
    if result.usage_error:
        typer.echo(f"error: {result.usage_error}", err=True)
        raise typer.Exit(2)
    typer.echo(render_json(result.diagnostics, result.files))
    raise typer.Exit(1 if any(d.is_error for d in result.diagnostics) else 0)


def main() -> None:
    app()
