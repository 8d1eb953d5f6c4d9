"""Shared by tests/test_emit_*.py: the sources every emitter is tried on, and helpers."""

from __future__ import annotations

import json
import re
from pathlib import Path

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent
EXAMPLES = REPO / "examples"
SHARED = REPO.parent / "shared"
CASES = SHARED / "conformance" / "cases"
MCP_SCHEMA = SHARED / "schemas" / "mcp-2025-11-25.schema.json"


class JsonSnapshot(SingleFileSnapshotExtension):
    """One ``.json`` file per snapshot, so a diff reads like the emitted document."""

    _write_mode = WriteMode.TEXT
    file_extension = _file_extension = "json"  # (syrupy 7 / older spelling)


class PythonSnapshot(SingleFileSnapshotExtension):
    """One file per ejected module (not ``.py``: pytest and ruff must not pick it up)."""

    _write_mode = WriteMode.TEXT
    file_extension = _file_extension = "py.snap"


def example_files() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*/*.kflow"))


def fixture_files() -> list[Path]:
    return sorted(FIXTURES.glob("*.kflow"))


def snapshot_sources() -> list[tuple[str, Path]]:
    """(id, path) of every example and every fixture: the snapshotted inputs."""
    out = [(f"example-{p.parent.name}", p) for p in example_files()]
    out += [(f"fixture-{p.stem}", p) for p in fixture_files()]
    return out


def conformance_files() -> list[Path]:
    if not CASES.is_dir():
        return []
    return sorted(CASES.rglob("*.kflow"))


def directives(path: Path) -> dict[str, list[str]]:
    """The ``# name: value`` header lines of a conformance case."""
    out: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"#\s*([a-z-]+)(?::\s*(.*))?$", line)
        if not m:
            if line.strip() and not line.startswith("#"):
                break
            continue
        out.setdefault(m.group(1), []).append((m.group(2) or "").strip())
    return out


def load(path: Path):
    """The checked program of ``path``, or None when it has errors."""
    from kailash_dsl.compiler.api import load_program

    program = load_program(str(path))
    return None if program.has_errors else program


def clean_sources() -> list[tuple[str, Path]]:
    """Every example, fixture and conformance case that checks clean."""
    out = list(snapshot_sources())
    for p in conformance_files():
        if load(p) is not None:
            out.append((f"case-{p.relative_to(CASES).with_suffix('')}".replace("/", "-"), p))
    return out


def mcp_list_tools_schema() -> dict | None:
    if not MCP_SCHEMA.is_file():
        return None
    schema = json.loads(MCP_SCHEMA.read_text(encoding="utf-8"))
    return {"$ref": "#/$defs/ListToolsResult", "$defs": schema["$defs"]}
