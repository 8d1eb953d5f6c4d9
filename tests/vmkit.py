"""Helpers for runtime tests: write a program and its nodes to a folder, run it in-process."""

from __future__ import annotations

import asyncio
import importlib
import sys
import textwrap
import uuid
from pathlib import Path

from kailash_dsl.runtime import api


def write_program(folder: Path, kflow: str, nodes: str = "", module: str | None = None) -> Path:
    """``folder/prog.kflow`` plus its node module; returns the .kflow path."""
    module = module or f"vmkit_nodes_{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(nodes))
    src = textwrap.dedent(kflow).replace("NODES", module)
    path = folder / "prog.kflow"
    path.write_text(src)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    importlib.invalidate_caches()
    return path


def run(path: Path, data: dict | None = None, *, workflow: str | None = None,
        run_id: str | None = None, db: Path | None = None, block_for: float = 5.0):
    db = db or path.parent / "runs.db"
    return asyncio.run(api.start(str(path), workflow, data or {}, run_id=run_id, db=db,
                                 block_for=block_for))


def resume(path: Path, run_id: str, *, db: Path | None = None, block_for: float = 5.0):
    db = db or path.parent / "runs.db"
    return asyncio.run(api.resume(run_id, db=db, block_for=block_for))
