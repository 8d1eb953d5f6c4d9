"""Emitters: JSON Schema, OpenAPI 3.1, MCP tool manifests and the Python eject.

Each emitter takes checked :class:`~kailash_dsl.compiler.program.Program` objects and
returns text; output is deterministic (same input, byte-identical output).
``kflow emit`` is :func:`run_emit`.
"""

from __future__ import annotations

import sys
from pathlib import Path

TARGETS = ("python", "openapi", "mcp", "jsonschema")


def emit_text(target: str, paths: list[str]) -> str:
    """Check ``paths`` and emit ``target``; raises :class:`EmitError` on a problem."""
    from .common import EmitError, load_programs

    if target not in TARGETS:
        raise EmitError(f"unknown emit target `{target}` (python, openapi, mcp, jsonschema)")
    if target == "python" and len(paths) != 1:
        raise EmitError("`kflow emit python` takes exactly one FILE (its imports come along)")
    programs = load_programs(paths)
    if target == "jsonschema":
        from . import jsonschema
        return jsonschema.emit(programs)
    if target == "openapi":
        from . import openapi
        return openapi.emit(programs)
    if target == "mcp":
        from . import mcp
        return mcp.emit(programs)
    from . import python
    return python.emit(programs[0], source=Path(paths[0]).name)


def run_emit(target: str, paths: list[str], out: str | None) -> int:
    """``kflow emit``: 0 written, 1 the program has errors, 2 usage error."""
    from .common import EmitError

    if target not in TARGETS:
        print(f"error: unknown emit target `{target}` (python, openapi, mcp, jsonschema)",
              file=sys.stderr)
        return 2
    if target == "python" and len(paths) != 1:
        print("error: `kflow emit python` takes exactly one FILE (its imports come along)",
              file=sys.stderr)
        return 2
    for p in paths:
        if not Path(p).is_file():
            print(f"error: no such file: {p}", file=sys.stderr)
            return 2
    try:
        text = emit_text(target, paths)
    except EmitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if out:
        path = Path(out)
        path.write_text(text, encoding="utf-8")
        if target == "python":  # it has a shebang: make it runnable
            path.chmod(path.stat().st_mode | 0o111)
    else:
        sys.stdout.write(text)
    return 0
