"""The `kflow` entry point, with a fast path for `kflow check` that skips Typer.

`kflow check` is run by editors, pre-commit hooks and CI on every save, so its cold start
matters (target: under 200 ms for a 50-line file). Importing Typer (and through it its
vendored Click) costs ~25 ms, so the common, well-formed invocations of `check` and
`--version` are handled here with the standard library only. Anything else — `--help`,
an unknown option, a missing argument, every other command — goes to the Typer app in
:mod:`kailash_dsl.cli`, which calls the very same :func:`run_check`, so behaviour is
identical either way.
"""

from __future__ import annotations

import os
import sys

FORMATS = ("human", "json", "github", "sarif")


def _fail(message: str) -> int:
    sys.stderr.write(f"error: {message}\n")
    return 2


def run_check(paths: list[str], fmt: str = "human", explain: bool = False) -> int:
    """`kflow check`: print the report in ``fmt``; return the exit status (0, 1 or 2)."""
    if fmt not in FORMATS:
        return _fail(f"unknown --format `{fmt}` (expected one of: {', '.join(FORMATS)})")
    if not paths:
        return _fail("no path given (usage: kflow check PATH... [--format FORMAT])")
    for p in paths:
        if not os.path.exists(p):
            return _fail(f"no such file or directory: {p}")
    try:
        from .compiler.api import check_paths

        result = check_paths(list(paths), explain=explain)
    except Exception as exc:  # a bug in kflow, never in the user's program
        if os.environ.get("KFLOW_DEBUG"):
            raise
        first = (str(exc).splitlines() or [""])[0]
        return _fail(f"internal error while checking: {type(exc).__name__}: {first} "
                     "(set KFLOW_DEBUG=1 for the traceback; please report it)")
    if result.usage_error:
        return _fail(str(result.usage_error).strip().splitlines()[0])

    explanations = list(result.explanations or []) if explain else None
    from . import render

    if fmt == "human":
        color = render.want_color(sys.stdout)
        text = render.render_human(result.diagnostics, result.files, color=color,
                                   explanations=explanations)
    else:
        text = render.render(fmt, result.diagnostics, result.files,
                             explanations=explanations)
    _write(text)
    return 1 if any(d.is_error for d in result.diagnostics) else 0


def _write(text: str) -> None:
    out = sys.stdout
    try:
        if text:
            try:
                out.write(text + "\n")
            except UnicodeEncodeError:
                enc = out.encoding or "ascii"
                out.write((text + "\n").encode(enc, "replace").decode(enc))
        out.flush()
    except BrokenPipeError:
        # `kflow check | head`: the reader left; stay quiet like other CLI tools.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError):
            pass


def _fast_check_args(args: list[str]) -> tuple[list[str], str, bool] | None:
    """Parse `check` arguments the way the Typer command would, or None to defer to it."""
    paths: list[str] = []
    fmt = "human"
    explain = False
    i = 0
    only_paths = False
    while i < len(args):
        a = args[i]
        if only_paths or a == "-" or not a.startswith("-"):
            paths.append(a)
        elif a == "--":
            only_paths = True
        elif a == "--explain":
            explain = True
        elif a == "--format":
            if i + 1 >= len(args):
                return None
            fmt = args[i + 1]
            i += 1
        elif a.startswith("--format="):
            fmt = a[len("--format="):]
        else:
            return None  # --help, unknown options, …: Typer says it best
        i += 1
    if not paths:
        return None
    return paths, fmt, explain


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    # the checker and compiler recurse on expression depth: a 500-term `a + a + ...` needs
    # more than Python's default 1,000 frames
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    if args == ["--version"]:
        from . import __version__

        sys.stdout.write(f"kflow {__version__}\n")
        sys.exit(0)
    if args and args[0] == "check" and not os.environ.get("KFLOW_NO_FAST_PATH"):
        parsed = _fast_check_args(args[1:])
        if parsed is not None:
            sys.exit(run_check(*parsed))
    from .cli import main as typer_main

    typer_main(args)
