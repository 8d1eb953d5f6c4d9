"""Name resolution and scopes (§5): what each name refers to, and where it is visible."""

from __future__ import annotations

from checker_util import codes, diag, errors, let_type, prog, wf

from kailash_dsl.compiler.program import ConstInfo, NodeInfo, WorkflowInfo
from kailash_dsl.grammar import ast as A

NODE = '@impl("m:f")\n@effect(pure)\nnode Twice(n: int) -> int\n'


def names_of(p, ident):
    return [ref for node, ref in p.names.items()
            if isinstance(node, A.Name) and node.id == ident]


def test_module_declarations_are_visible_in_any_order():
    p = prog("workflow W() -> int {\n  let x = Later(n: LIMIT)\n  return x\n}\n"
             + NODE.replace("Twice", "Later") + "const LIMIT = 3\n")
    assert errors(p) == []
    kinds = {ref.kind for ref in names_of(p, "LIMIT")}
    assert kinds == {"const"}
    (ref,) = names_of(p, "Later")
    assert ref.kind == "node" and isinstance(ref.target, NodeInfo)


def test_let_is_visible_only_after_it():
    p = prog(wf("  let a = b\n  let b = 1", body_tail="return a + b"))
    assert errors(p) == ["E0101@2"]
    assert "cannot find `b`" in diag(p, "E0101").message


def test_if_branches_are_scopes():
    p = prog(wf("  if true {\n    let inner = 1\n  } else {\n    let other = inner\n  }",
                body_tail="return inner"))
    assert errors(p) == ["E0101@5", "E0101@7"]


def test_for_and_try_bodies_are_scopes_but_see_outer_names():
    p = prog(wf("  let base = 1\n  for x in [1] {\n    let y = x + base\n  }\n"
                "  try {\n    let z = base\n  } catch as e {\n    let m = e.message\n  }",
                body_tail="return y + z"))
    assert errors(p) == ["E0101@11", "E0101@11"]


def test_parallel_and_transaction_bindings_stay_visible():
    p = prog(NODE + wf("  parallel {\n    let a = Twice(n: 1)\n    let b = Twice(n: a)\n  }\n"
                       "  transaction {\n    let c = Twice(n: b)\n  }", body_tail="return a + b + c"))
    assert errors(p) == []


def test_loop_variable_is_not_visible_after_the_loop():
    p = prog(wf("  for item in [1, 2] {\n    let y = item\n  }", body_tail="return item"))
    assert errors(p) == ["E0101@5"]


def test_comprehension_variable_is_local_to_it():
    p = prog(wf("  let xs = [v * 2 for v in [1, 2] if v > 0]", body_tail="return v"))
    assert errors(p) == ["E0101@3"]
    comp = next(n for n in p.bindings if isinstance(n, A.Comprehension))
    assert p.bindings[comp].kind == "comprehension"


def test_builtins_are_not_reserved_and_are_shadowed_by_bindings():
    p = prog("workflow W(len: int) -> int {\n  let sum = len + 1\n  return sum\n}\n")
    assert errors(p) == []
    assert {r.kind for r in names_of(p, "len")} == {"local"}
    p = prog("workflow W(len: int) -> int {\n  return len([1])\n}\n")
    assert errors(p) == ["E0102@2"]
    assert "shadowed" in diag(p, "E0102").message


def test_declarations_shadow_builtins_in_call_position():
    p = prog('@impl("m:f")\n@effect(pure)\nnode len(x: str) -> str\n'
             'workflow W() -> str {\n  return len(x: "a")\n}\n')
    assert errors(p) == []
    call = next(n for n in p.calls if isinstance(n, A.Call))
    assert p.calls[call].kind == "node"


def test_duplicate_names():
    p = prog("type A { x: int }\nenum A { a }\nworkflow W(p: int) -> int {\n"
             "  let p = 1\n  let q = 1\n  let q = 2\n  if true { let q = 3 }\n  return q\n}\n")
    assert errors(p) == ["E0103@2", "E0103@4", "E0103@6"]
    d = diag(p, "E0103")
    assert d.labels and d.labels[0].span.line == 1


def test_underscore_may_be_bound_twice_without_warning():
    p = prog(wf("  let _ = 1\n  let _ = 2"))
    assert codes(p) == []


def test_null_check_narrows_in_if_and_after_early_exit():
    src = ("type U { name: str }\n"
           "workflow W(u: U?, v: U?) -> str {\n"
           "  if u != null and u.name != \"\" {\n    return u.name\n  }\n"
           "  if v == null {\n    return \"none\"\n  }\n"
           "  let n = v.name\n"
           "  let x = if u == null then \"-\" else u.name\n"
           "  return n + x + u.name\n}\n")
    p = prog(src)
    assert errors(p) == ["E0206@11"]


def test_catch_binding_has_the_error_record_type():
    p = prog(wf("  try {\n    fail Boom(\"x\")\n  } catch Boom as e {\n"
                "    let k: str = e.kind\n    let s = e.step\n    let bad = e.code\n  }"))
    assert errors(p) == ["E0204@7"]
    assert let_type(p, "s") == "str"


def test_names_through_an_import_alias(tmp_path):
    lib = tmp_path / "lib.kflow"
    lib.write_text("const K = 2\nenum Tier { basic, gold }\n"
                   "workflow Square(n: int) -> int {\n  return n * n\n}\n")
    src = ('import "./lib.kflow" as m\n'
           "workflow W(t: m.Tier = m.Tier.gold) -> int {\n"
           "  let y = m.Square(n: m.K)\n  return y\n}\n")
    p = prog(src, str(tmp_path / "main.kflow"))
    assert errors(p) == []
    attrs = {n.name: ref for n, ref in p.names.items() if isinstance(n, A.Attribute)}
    assert attrs["K"].kind == "const" and isinstance(attrs["K"].target, ConstInfo)
    assert attrs["K"].target.value == 2
    assert attrs["gold"].kind == "enum_member" and attrs["gold"].target[1] == "gold"
    assert attrs["Square"].kind == "workflow" and isinstance(attrs["Square"].target,
                                                             WorkflowInfo)
    assert {r.kind for r in names_of(p, "m")} == {"module"}


def test_import_exports_only_declarations_not_imports(tmp_path):
    (tmp_path / "a.kflow").write_text("import std.core\nconst X = 1\n")
    src = 'import "./a.kflow" as a\nworkflow W() -> int {\n  a.core.Log(message: "x")\n  return a.X\n}\n'
    p = prog(src, str(tmp_path / "main.kflow"))
    assert errors(p) == ["E0101@3"]
    assert "module `a` has no `core`" in diag(p, "E0101").message
