"""The std .kflow files: they parse, every node is documented, has an effect and an
@impl that resolves to a callable whose parameters match the declaration."""

from __future__ import annotations

import importlib
import inspect

import pytest

from kailash_dsl.grammar import ast as A
from kailash_dsl.grammar.parser import parse_file
from kailash_dsl.stdlib import MODULES, STDLIB_DIR, module_path

KFLOW_FILES = sorted(STDLIB_DIR.glob("*.kflow"))


def _nodes():
    for path in KFLOW_FILES:
        module, diags = parse_file(path)
        assert diags == [], (path, diags)
        for decl in module.decls:
            if isinstance(decl, A.NodeDecl):
                yield path.stem, decl


NODES = list(_nodes())


def _attr(decl, name):
    found = [a for a in decl.attrs if a.name == name]
    return found[0] if found else None


def test_every_std_module_is_shipped():
    assert {p.stem for p in KFLOW_FILES} == set(MODULES)
    for name in MODULES:
        assert module_path(name) == STDLIB_DIR / f"{name}.kflow"
        assert module_path(f"std.{name}") == STDLIB_DIR / f"{name}.kflow"
    assert module_path("nope") is None


@pytest.mark.parametrize("path", KFLOW_FILES, ids=lambda p: p.stem)
def test_module_declares_its_std_name(path):
    module, diags = parse_file(path)
    assert diags == []
    assert module.module_decl is not None and module.module_decl.name == f"std.{path.stem}"


@pytest.mark.parametrize("mod,decl", NODES, ids=lambda x: getattr(x, "name", x))
def test_node_has_doc_effect_and_impl(mod, decl):
    assert decl.doc and len(decl.doc) > 10
    effect = _attr(decl, "effect")
    assert effect is not None
    assert effect.args[0].value.id in ("pure", "read", "write")
    assert _attr(decl, "impl") is not None


@pytest.mark.parametrize("mod,decl", NODES, ids=lambda x: getattr(x, "name", x))
def test_impl_resolves_and_matches_parameters(mod, decl):
    target = _attr(decl, "impl").args[0].value.value
    module_name, _, attr = target.partition(":")
    assert module_name.startswith("kailash_dsl.stdlib.")
    func = getattr(importlib.import_module(module_name), attr)
    assert callable(func)
    if _attr(decl, "transactional") is not None:  # a 2PC participant class
        assert inspect.isclass(func)
        instance = func()  # instantiated with no arguments
        for method in ("commit", "abort"):
            params = inspect.signature(getattr(instance, method)).parameters
            assert list(params) == ["ctx"] and params["ctx"].kind is inspect.Parameter.KEYWORD_ONLY
        func = instance.prepare
    sig = inspect.signature(func)
    declared = [p.name for p in decl.params]
    positional = [
        n for n, p in sig.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "ctx"
    ]
    assert positional == declared, f"{mod}.{decl.name}: {positional} != {declared}"
    # parameters with a default in kflow have one in Python, and no others
    for p in decl.params:
        assert (sig.parameters[p.name].default is not inspect.Parameter.empty) == (
            p.default is not None
        ), f"{mod}.{decl.name}({p.name})"
    if "ctx" in sig.parameters:
        assert sig.parameters["ctx"].kind is inspect.Parameter.KEYWORD_ONLY


def test_core_is_pinned():
    core = {d.name: d for m, d in NODES if m == "core"}
    assert set(core) == {"Log", "Echo", "Fail", "Now", "Uuid"}

    def sig(d):
        return [(p.name, p.default is not None) for p in d.params]

    assert sig(core["Log"]) == [("message", False), ("level", True)]
    assert core["Log"].params[0].type.name == "str"
    assert core["Log"].params[1].default.value == "info"
    eff = _attr(core["Log"], "effect")
    assert eff.args[0].value.id == "write" and eff.args[1].name == "resource"
    assert eff.args[1].value.value == "log"
    assert _attr(core["Echo"], "effect").args[0].value.id == "pure"
    assert _attr(core["Now"], "effect").args[0].value.id == "read"
    assert _attr(core["Uuid"], "effect").args[0].value.id == "read"
    assert sig(core["Fail"]) == [("kind", False), ("message", False)]
    for name, result in [("Log", "null"), ("Echo", "json"), ("Fail", "null"),
                         ("Now", "str"), ("Uuid", "str")]:
        assert isinstance(core[name].result, A.TypeName) and core[name].result.name == result


def test_stdlib_reference_is_up_to_date():
    import subprocess
    import sys

    from kailash_dsl.stdlib import STDLIB_DIR as d

    script = d.parent.parent / "docs" / "gen_stdlib.py"
    if not script.exists():
        pytest.skip("docs/gen_stdlib.py is not in this checkout")
    proc = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
