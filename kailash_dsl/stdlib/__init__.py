"""kflow's standard library: ``std.<name>`` modules.

Each module is an ordinary ``.kflow`` file of node declarations in this folder
(``core.kflow`` is ``std.core``), whose ``@impl`` attributes point at the Python
implementations beside it (``kailash_dsl.stdlib.core:log``, ...). Implementations fail a
step by raising :class:`~kailash_dsl.stdlib.errors.NodeError`, whose ``kind`` becomes the
error's kind.
"""

from __future__ import annotations

from pathlib import Path

STDLIB_DIR = Path(__file__).resolve().parent

#: the std modules shipped with the package, by their name after ``std.``
MODULES = ("core", "http", "sql", "file", "json", "text")


def module_path(name: str) -> Path | None:
    """``"http"`` or ``"std.http"`` → the path of ``http.kflow``; None when there is none."""
    if name.startswith("std."):
        name = name[4:]
    path = STDLIB_DIR / f"{name}.kflow"
    return path if name.isidentifier() and path.is_file() else None


__all__ = ["STDLIB_DIR", "MODULES", "module_path"]
