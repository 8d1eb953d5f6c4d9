"""The library entry points of the front end.

* :func:`check_paths` — what ``kflow check`` runs: files and folders in, sorted
  diagnostics out (plus the file count, a usage error, and ``--explain`` lines);
* :func:`check` — the same, as ``kailash_dsl.check(paths)``: just the diagnostics;
* :func:`load_program` — one entry file and its imports, checked: the :class:`Program`
  the compiler, the runtime and the emitters start from;
* :func:`check_source` — source text instead of a file (tests, editors).

Nothing here imports Rich, Typer or asyncio: ``kflow check`` must start fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..diagnostics import Diagnostic
from ..grammar.ast import Span
from .program import Program

__all__ = [
    "CheckResult",
    "check",
    "check_paths",
    "check_source",
    "collect_files",
    "load_program",
]


@dataclass
class CheckResult:
    diagnostics: list[Diagnostic]
    files: int
    usage_error: str | None = None
    #: (span, text) per transaction block, when asked with ``explain=True``
    explanations: list[tuple[Span, str]] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(1 for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> int:
        return len(self.diagnostics) - self.errors


def collect_files(paths) -> tuple[list[str], str | None]:
    """The files named, and every ``.kflow`` below the folders named (sorted, hidden
    folders skipped). Returns (files, usage error)."""
    files: list[str] = []
    seen: set[str] = set()
    for raw in paths:
        p = Path(os.fspath(raw))
        if p.is_dir():
            found = []
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                found.extend(os.path.join(root, n) for n in names if n.endswith(".kflow"))
            for f in sorted(found):
                key = os.path.abspath(f)
                if key not in seen:
                    seen.add(key)
                    files.append(f)
        elif p.exists():
            key = os.path.abspath(p)
            if key not in seen:
                seen.add(key)
                files.append(str(p))
        else:
            return files, f"no such file or folder: {raw}"
    return files, None


def check_paths(paths, explain: bool = False) -> CheckResult:
    """Check files and folders (every ``.kflow`` below a folder), their imports included.

    Problems inside an imported file are reported in that file, once, however many of
    the checked files import it."""
    files, usage = collect_files(paths)
    if usage is not None:
        return CheckResult([], len(files), usage)
    if not files:
        return CheckResult([], 0)
    from .checker import check_files, sort_unique

    checker, entries = check_files(files)
    diags: list[Diagnostic] = []
    for m in checker.loader.modules.values():
        diags.extend(checker.loader.diagnostics.get(m.path, ()))
    for entry in entries:
        diags.extend(checker.loader.cycle_diagnostics(entry))
        diags.extend(checker.loader.name_clash_diagnostics(entry))
    diags.extend(checker.diagnostics)
    explanations: list[tuple[Span, str]] = []
    if explain:
        named = {e.ast.path for e in entries}
        explanations = sorted((x for x in checker.explanations if x[0].file in named),
                              key=lambda x: (x[0].file, x[0].line, x[0].column))
    return CheckResult(sort_unique(diags), len(files), None, explanations)


def check(paths, explain: bool = False) -> list[Diagnostic]:
    """``kailash_dsl.check``: the sorted diagnostics for files/folders (a str or a list).

    Raises FileNotFoundError for a path that does not exist."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    result = check_paths(list(paths), explain=explain)
    if result.usage_error:
        raise FileNotFoundError(result.usage_error)
    return result.diagnostics


def load_program(path) -> Program:
    """The checked program of one entry file and its imports. Look at
    ``program.has_errors`` / ``program.diagnostics`` before compiling it."""
    from .checker import check_files

    p = os.fspath(path)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"no such file: {p}")
    checker, entries = check_files([p])
    return checker.program_for(entries[0])


def check_source(text: str, path: str = "<string>.kflow",
                 overlay: dict[str, str] | None = None) -> Program:
    """Check source text as if it were the file ``path`` (its imports resolve next to
    ``path``). ``overlay`` maps absolute paths to texts that stand for those files (an
    editor's unsaved buffers)."""
    from .checker import check_source as _check_source

    return _check_source(text, path, overlay)
