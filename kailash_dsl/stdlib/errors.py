"""Errors raised by the standard library's node implementations.

A node implementation fails its step by raising. The runtime turns a plain exception
into an error of kind ``StepFailed`` whose message is the exception's text (§9); an
exception carrying a string attribute ``kind`` (like :class:`NodeError`) gives the step
that kind instead, so ``try { ... } catch HttpError { ... }`` can single it out.
"""

from __future__ import annotations


class NodeError(Exception):
    """A step failure with an explicit error kind (``HttpError``, ``Timeout``, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:  # the runtime's ``message``
        return self.message

    def __repr__(self) -> str:
        return f"NodeError({self.kind!r}, {self.message!r})"
