"""kflow — a typed, declarative, durable workflow language (package ``kailash_dsl``)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "check"]


def check(paths, *, explain: bool = False):
    """Check ``.kflow`` files or folders; returns the list of Diagnostics."""
    from .compiler.api import check as _check

    return _check(paths, explain=explain)
