"""Helpers for the checker's unit tests."""

from __future__ import annotations

from kailash_dsl.compiler.api import check_source
from kailash_dsl.compiler.program import Program
from kailash_dsl.grammar import ast as A


def prog(src: str, path: str = "t.kflow") -> Program:
    return check_source(src, path)


def codes(p: Program, errors_only: bool = False) -> list[str]:
    return [f"{d.code}@{d.span.line}" for d in p.diagnostics
            if d.is_error or not errors_only]


def errors(p: Program) -> list[str]:
    return codes(p, errors_only=True)


def diag(p: Program, code: str):
    found = [d for d in p.diagnostics if d.code == code]
    assert found, f"no {code} in {codes(p)}"
    return found[0]


def let_type(p: Program, name: str) -> str:
    """The static type of the (first) `let name = ...` in the program, as text."""
    for node, b in p.bindings.items():
        if isinstance(node, A.Let) and node.name == name:
            return b.type.show()
    raise AssertionError(f"no let {name}")


def wf(src: str, ret: str = "int", params: str = "", body_tail: str = "return 0") -> str:
    """A workflow around a body."""
    return f"workflow W({params}) -> {ret} {{\n{src}\n  {body_tail}\n}}\n"
