"""`kflow doc`: every standard-library node renders with its signature, effect and doc."""

from __future__ import annotations

import pytest

from kailash_dsl.compiler.api import load_program
from kailash_dsl.compiler.program import NodeInfo
from kailash_dsl.docgen import DocError, render
from kailash_dsl.stdlib import MODULES, module_path


def _std_nodes():
    for mod in MODULES:
        prog = load_program(str(module_path(mod)))
        for sym in prog.entry.scope.values():
            if isinstance(sym, NodeInfo) and sym.module is prog.entry:
                yield mod, sym


@pytest.mark.parametrize("mod,node", [pytest.param(m, n, id=f"std.{m}.{n.name}")
                                      for m, n in _std_nodes()])
def test_every_std_node_renders(mod, node):
    text = render(f"std.{mod}.{node.name}")
    assert f"node {node.name}(" in text
    assert f"effect: {node.effect}" in text
    assert node.doc and node.doc.splitlines()[0] in text
    # and the module page lists it too
    assert f"`{mod}.{node.name}`" in render(f"std.{mod}")


def test_index_lists_every_module():
    text = render(None)
    for mod in MODULES:
        assert f"std.{mod}" in text


def test_unknown_targets_say_what_exists():
    with pytest.raises(DocError, match="did you mean `std.http`"):
        render("std.htp")
    with pytest.raises(DocError, match="did you mean `Get`"):
        render("std.http.Gte")


def test_user_files_render(tmp_path):
    f = tmp_path / "m.kflow"
    f.write_text('## Charge a card.\n@impl("x:y")\n@effect(write, resource: "pay")\n'
                 '@retry(attempts: 3, backoff: constant(1s))\n'
                 'node Charge(amount: float, currency: str = "USD") -> {id: str}\n')
    text = render(f"{f}:Charge")
    assert 'node Charge(amount: float, currency: str = "USD") -> {id: str}' in text
    assert 'effect: write (resource "pay")' in text
    assert "retry: 3 attempts, constant(1000ms)" in text
    assert "Charge a card." in text


def test_cli_doc_exit_codes(kflow):
    ok = kflow("doc", "std.core.Log")
    assert ok.exit_code == 0 and "node Log(" in ok.stdout
    bad = kflow("doc", "std.nope")
    assert bad.exit_code == 2 and "no standard module" in bad.stderr
