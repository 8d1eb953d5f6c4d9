"""Each checking rule: where its diagnostic sits (§11), what it says, and what the
checker records for later stages (attributes, statement policies, transaction plans)."""

from __future__ import annotations

from checker_util import codes, diag, errors, prog, wf

from kailash_dsl.compiler.api import check_paths, load_program
from kailash_dsl.compiler.program import NO_RETRY, READ_RETRY, Backoff, RetryPolicy
from kailash_dsl.grammar import ast as A

GREET = ('@impl("m:greet")\n@effect(pure)\n'
         'node Greet(name: str, punctuation: str = "!") -> {text: str, length: int}\n')


# -- where diagnostics sit ----------------------------------------------------------------

def test_E0202_sits_at_the_call_and_names_every_missing_argument():
    p = prog(GREET + 'workflow W() -> str {\n  let g = Greet(punctuation: "?")\n  return g.text\n}\n')
    d = diag(p, "E0202")
    assert (d.span.line, d.span.column) == (5, 11)
    assert "`name`" in d.message and d.help == "add `name: <str>`"


def test_E0203_sits_at_the_argument_name_with_did_you_mean():
    p = prog(GREET + 'workflow W() -> str {\n  let g = Greet(name: "a", punctuaton: "?")\n'
             "  return g.text\n}\n")
    d = diag(p, "E0203")
    assert (d.span.line, d.span.column) == (5, 28)
    assert d.help == "did you mean `punctuation`?"


def test_E0201_sits_at_the_argument_value():
    p = prog(GREET + "workflow W() -> str {\n  let g = Greet(name: 42)\n  return g.text\n}\n")
    d = diag(p, "E0201")
    assert (d.span.line, d.span.column) == (5, 23)
    assert d.message == "argument `name`: expected `str`, found `int`"
    assert "str(x)" in d.help


def test_E0204_sits_at_the_field_name():
    p = prog(GREET + 'workflow W() -> int {\n  let g = Greet(name: "a")\n  return g.lenght\n}\n')
    d = diag(p, "E0204")
    assert (d.span.line, d.span.column) == (6, 12)
    assert d.help == "did you mean `length`?"


def test_E0207_sits_at_the_extra_field():
    p = prog("type P { x: int }\nworkflow W() -> P {\n  return {x: 1, y: 2}\n}\n")
    d = diag(p, "E0207")
    assert (d.span.line, d.span.column) == (3, 17)


def test_E0206_sits_at_the_access_on_the_optional():
    p = prog("type A { c: str }\ntype U { a: A? }\nworkflow W(u: U) -> str {\n"
             "  return u.a.c\n}\n")
    d = diag(p, "E0206")
    assert (d.span.line, d.span.column) == (4, 14)
    assert "`u.a`" in d.message and "?." in d.help


def test_E0501_sits_at_the_workflow_declaration():
    p = prog("\n@api\nworkflow Sign(n: int) -> str {\n  if n > 0 {\n    return \"+\"\n  }\n}\n")
    assert errors(p) == ["E0501@3"]


def test_E0205_sits_at_the_returned_expression():
    p = prog("workflow W() -> int {\n  return \"s\"\n}\n")
    d = diag(p, "E0205")
    assert (d.span.line, d.span.column) == (2, 10)
    assert "expected `int`, found `str`" in d.message


def test_no_result_type_means_no_return_needed():
    assert errors(prog("workflow W() {\n  emit \"x\" 1\n}\n")) == []
    assert errors(prog("workflow W() -> null {\n  return null\n}\n")) == []


def test_fail_in_both_forms_ends_a_path():
    src = ("workflow W(n: int) -> int {\n  if n > 0 {\n    fail Neg(\"x ${n}\")\n  } else {\n"
           "    fail \"plain\"\n  }\n}\n")
    assert codes(prog(src)) == []


# -- warnings ------------------------------------------------------------------------------

def test_W0001_unused_let_but_not_underscore_or_params():
    p = prog("workflow W(unused_param: int) -> int {\n  let a = 1\n  let _b = 2\n  return 0\n}\n")
    assert codes(p) == ["W0001@2"]
    assert diag(p, "W0001").severity == "warning"


def test_W0002_once_per_block_after_return():
    p = prog(wf("  return 1\n  let a = 2\n  let b = 3"))
    assert [c for c in codes(p) if c.startswith("W0002")] == ["W0002@3"]


def test_W0003_when_result_swallowed_but_not_after_a_null_check():
    src = (GREET + "workflow W(c: bool) -> str {\n  let g = Greet(name: \"a\") when c\n"
           "  let text = \"${g}\"\n  if g != null {\n    return \"${g} ${text}\"\n  }\n"
           "  return g?.text ?? \"\"\n}\n")
    p = prog(src)
    assert [c for c in codes(p) if c.startswith("W")] == ["W0003@6"]


# -- imports and files ----------------------------------------------------------------------

def test_problems_in_an_imported_file_are_reported_in_that_file(tmp_path):
    (tmp_path / "lib.kflow").write_text("workflow Bad() -> int {\n  return \"s\"\n}\n")
    main = tmp_path / "main.kflow"
    main.write_text('import "./lib.kflow" as lib\nworkflow W() -> int {\n'
                    "  let b = lib.Bad()\n  return b\n}\n")
    result = check_paths([str(main)])
    (d,) = result.diagnostics
    assert d.code == "E0205" and d.span.file.endswith("lib.kflow") and d.span.line == 2


def test_an_imported_file_is_checked_once_for_many_importers(tmp_path):
    (tmp_path / "lib.kflow").write_text("workflow Bad() -> int {\n  return \"s\"\n}\n")
    for name in ("a", "b"):
        (tmp_path / f"{name}.kflow").write_text('import "./lib.kflow" as lib\n')
    result = check_paths([str(tmp_path)])
    assert [d.code for d in result.diagnostics] == ["E0205"]
    assert result.files == 3


def test_import_cycle_is_reported_once_at_the_entry_import(tmp_path):
    (tmp_path / "a.kflow").write_text('import "./b.kflow" as b\n')
    (tmp_path / "b.kflow").write_text('\nimport "./a.kflow" as a\n')
    result = check_paths([str(tmp_path / "a.kflow")])
    assert [(d.code, d.span.line, d.span.file.endswith("a.kflow"))
            for d in result.diagnostics] == [("E0104", 1, True)]
    assert "`a.kflow` → `b.kflow` → `a.kflow`" in result.diagnostics[0].message


def test_syntax_error_in_an_import_does_not_cascade(tmp_path):
    (tmp_path / "lib.kflow").write_text("workflow ( {\n")
    src = 'import "./lib.kflow" as lib\nworkflow W() -> int {\n  let x = lib.Anything(a: 1)\n  return lib.K\n}\n'
    p = prog(src, str(tmp_path / "main.kflow"))
    assert [(d.code, d.span.file.endswith("lib.kflow")) for d in p.diagnostics] == [
        ("E0001", True)]


def test_std_import_resolves_to_the_shipped_module():
    p = prog('import std.core as c\nworkflow W() -> str {\n  c.Log(message: "hi")\n'
             "  let t = c.Now()\n  return t\n}\n")
    assert errors(p) == []
    mods = {m.name: m for m in p.modules.values()}
    assert mods["std.core"].is_std
    log = mods["std.core"].scope["Log"]
    assert log.effect == "write" and log.resource == "log" and log.qualname == "std.core.Log"
    assert mods["std.core"].scope["Echo"].effect == "pure"
    d = diag(prog("import std.cor\n"), "E0104")
    assert d.help == "did you mean `std.core`?"


# -- constants ------------------------------------------------------------------------------

def test_constants_are_folded_and_cycles_are_E0302():
    p = prog('const A = 2\nconst B = A * 3 + len("ab")\nconst L = [A, B]\n'
             'const S = "${B}!"\nconst X = Y\nconst Y = X\n')
    consts = {n: s for n, s in p.entry.scope.items() if hasattr(s, "value")}
    assert consts["B"].value == 8 and consts["L"].value == [2, 8] and consts["S"].value == "8!"
    assert errors(p) == ["E0302@6"]


def test_a_constant_cannot_use_the_outside_world():
    p = prog("const T = now()\n")
    assert errors(p) == ["E0201@1"]


# -- attributes -------------------------------------------------------------------------------

def test_node_attributes_fill_nodeinfo():
    src = ('@impl("shop.pay:charge")\n@effect(write, resource: "payments")\n@idempotent\n'
           "@retry(attempts: 3, backoff: exponential(200ms, max: 5s, jitter: true))\n"
           "@timeout(30s)\n@circuit_breaker(failures: 4, reset: 1m)\n@bulkhead(limit: 7)\n"
           "@compensate(Refund)\n"
           "node Charge(amount: float) -> {charge_id: str}\n"
           '@impl("shop.pay:refund")\n@transactional\n@effect(write, resource: "db")\n'
           "node Refund(charge_id: str) -> null\n")
    p = prog(src)
    assert errors(p) == []
    c, r = p.entry.scope["Charge"], p.entry.scope["Refund"]
    assert c.impl == "shop.pay:charge" and c.effect == "write" and c.resource == "payments"
    assert c.idempotent and c.timeout_ms == 30_000 and c.bulkhead == 7
    assert c.retry == RetryPolicy(3, Backoff("exponential", 200, 5000, True))
    assert c.circuit_breaker == (4, 60_000) and c.compensate is r
    assert set(c.attrs) >= {"impl", "effect", "retry"}
    assert r.transactional == "db"     # defaults to the effect's resource
    assert r.retry is None and r.timeout_ms is None


def test_default_effect_is_write_and_retry_policies():
    p = prog('@impl("m:f")\nnode N() -> int\n@impl("m:g")\n@retry(attempts: 2, backoff: constant(1s))\n'
             "@effect(read)\nnode R() -> int\n")
    n, r = p.entry.scope["N"], p.entry.scope["R"]
    assert n.effect == "write" and n.retry is None
    assert r.retry == RetryPolicy(2, Backoff("constant", 1000, None, False))
    assert NO_RETRY.attempts == 1 and READ_RETRY.attempts == 3


def test_unknown_attribute_is_E0301_at_the_attribute_with_did_you_mean():
    p = prog('@retrys(attempts: 3)\n@impl("m:f")\nnode N() -> int\n')
    d = diag(p, "E0301")
    assert d.span.line == 1 and d.help == "did you mean `@retry`?"


def test_bad_attribute_arguments_are_E0301():
    p = prog('@impl("nocolon")\n@effect(wrote)\n@timeout(5)\n@retry(attempts: "3")\n'
             "@bulkhead(limit: 0)\nnode N() -> int\n")
    assert errors(p) == ["E0301@1", "E0301@2", "E0301@3", "E0301@4", "E0301@5"]


def test_workflow_attributes():
    p = prog('@api(path: "/orders/{id}", method: "get", roles: ["ops"])\n@mcp\n'
             "workflow ProcessOrder(id: str) {\n}\n"
             '@mcp(name: "custom")\nworkflow Other() {\n}\n')
    assert errors(p) == []
    w, o = p.entry.scope["ProcessOrder"], p.entry.scope["Other"]
    assert (w.api_path, w.api_method, w.api_roles) == ("/orders/{id}", "GET", ("ops",))
    assert w.mcp_name == "process_order" and o.mcp_name == "custom" and o.api_path is None


def test_statement_attributes_are_recorded_in_stmt_policy():
    src = ('@impl("m:f")\n@effect(write)\nnode N(i: int) -> int\n'
           "workflow W() -> list[int] {\n  @retry(attempts: 5)\n  @timeout(2s)\n"
           "  let a = N(i: 1)\n  @concurrency(3)\n  let xs = for i in range(a) {\n"
           "    let r = N(i: i)\n    yield r\n  }\n  @concurrency(2)\n"
           "  for i in xs { N(i: i) }\n  return xs\n}\n")
    p = prog(src)
    assert errors(p) == []
    by_line = {s.span.line: pol for s, pol in p.stmt_policy.items()}
    assert by_line[7].retry.attempts == 5 and by_line[7].timeout_ms == 2000
    assert by_line[9].concurrency == 3 and by_line[14].concurrency == 2
    loop = next(n for n in p.stmt_policy if isinstance(n, A.For) and n.span.line == 9)
    assert p.stmt_policy[loop].concurrency == 3


def test_statement_attribute_on_the_wrong_statement():
    p = prog(wf("  @retry(attempts: 2)\n  let x = 1\n  @concurrency(2)\n  let y = upper(\"a\")"))
    assert errors(p) == ["E0301@2", "E0301@4"]


# -- compensation ---------------------------------------------------------------------------------

def test_E0402_at_the_compensate_attribute():
    src = ('@impl("m:a")\n@compensate(Release)\nnode Reserve(order_id: str) -> {res: str}\n'
           '@impl("m:b")\nnode Release(reservation: str) -> null\n')
    p = prog(src)
    d = diag(p, "E0402")
    assert d.span.line == 2 and "`reservation`" in d.message
    ok = src.replace("reservation: str", "res: str, order_id: str, why: str = \"undo\"")
    assert errors(prog(ok)) == []


def test_compensate_names_an_unknown_node():
    p = prog('@impl("m:a")\n@compensate(Refnd)\nnode Charge() -> null\n'
             '@impl("m:b")\nnode Refund() -> null\n')
    d = diag(p, "E0102")
    assert d.help == "did you mean `Refund`?"


# -- transactions -----------------------------------------------------------------------------------

TX_NODES = """
@impl("m:l")
@effect(write, resource: "ledger")
@transactional(resource: "ledger")
node Move(delta: int) -> {balance: int}
@impl("m:c")
@effect(write)
@compensate(Undo)
node Charge(amount: float) -> {id: str}
@impl("m:u")
@effect(write)
node Undo(id: str) -> null
@impl("m:s")
@effect(write)
node Ship() -> {t: str}
@impl("m:r")
@effect(read)
node Look() -> int
workflow Sub() -> int {
  let s = Ship()
  return 1
}
"""


def plan_of(body: str):
    p = prog(TX_NODES + "workflow W() {\n" + body + "\n}\n")
    (plan,) = p.transactions.values()
    return p, plan


def test_2pc_when_every_write_is_transactional():
    p, plan = plan_of("  transaction {\n    let a = Move(delta: 1)\n    let r = Look()\n"
                      "    let b = Move(delta: -1)\n  }")
    assert plan.pattern == "2pc" and len(plan.writes) == 2 and errors(p) == []
    assert p.explanations[0][1].startswith("transaction at 24:3: 2pc")


def test_saga_with_pivot_and_why():
    p, plan = plan_of("  transaction {\n    let a = Charge(amount: 1.0)\n    let s = Ship()\n  }")
    assert plan.pattern == "saga" and errors(p) == []
    assert isinstance(plan.pivot, A.Let) and plan.pivot.name == "s"
    assert "`Charge` is not @transactional" in plan.reason


def test_sleep_or_workflow_call_prevents_2pc():
    _, plan = plan_of("  transaction {\n    let a = Move(delta: 1)\n    sleep 1s\n  }")
    assert plan.pattern == "saga" and "sleep" in plan.reason
    p = prog(TX_NODES + "workflow W() {\n  transaction {\n    let a = Move(delta: 1)\n"
             "    let s = Calc()\n  }\n}\nworkflow Calc() -> int {\n  return 1\n}\n")
    (plan,) = p.transactions.values()
    assert plan.pattern == "saga" and "workflow `Calc`" in plan.reason
    # a sub-workflow that writes is a write step that cannot be undone
    p, plan = plan_of("  transaction {\n    let a = Move(delta: 1)\n    let s = Sub()\n  }")
    assert plan.pattern == "invalid" and errors(p) == ["E0401@25"]


def test_E0401_at_each_uncompensated_write_that_is_not_last():
    p, plan = plan_of("  transaction {\n    let s = Ship()\n    let t = Ship()\n"
                      "    let c = Charge(amount: 1.0)\n  }")
    assert plan.pattern == "invalid"
    assert errors(p) == ["E0401@25", "E0401@26"]
    assert diag(p, "E0401").help


def test_E0403_for_an_impossible_explicit_pattern():
    p, plan = plan_of("  transaction 2pc {\n    let a = Move(delta: 1)\n"
                      "    let c = Charge(amount: 1.0)\n  }")
    assert plan.pattern == "invalid" and errors(p) == ["E0403@26"]
    p, plan = plan_of("  transaction saga {\n    let s = Ship()\n    let c = Charge(amount: 1.0)\n  }")
    assert errors(p) == ["E0403@25"]


def test_reachable_nodes_go_through_sub_workflows_and_compensations():
    p = prog(TX_NODES + "workflow Top() {\n  let c = Charge(amount: 1.0)\n  let x = Sub()\n}\n")
    top = p.entry.scope["Top"]
    assert [n.name for n in top.reachable_nodes] == ["Charge", "Undo", "Ship"]


# -- the API ----------------------------------------------------------------------------------------

def test_load_program_gives_the_entry_and_its_imports(tmp_path):
    (tmp_path / "lib.kflow").write_text("workflow Square(n: int) -> int {\n  return n * n\n}\n")
    main = tmp_path / "main.kflow"
    main.write_text('import "./lib.kflow" as m\nimport std.core\n'
                    "workflow Use(x: int) -> int {\n  let y = m.Square(n: x)\n  return y\n}\n")
    p = load_program(str(main))
    assert not p.has_errors
    assert [w.name for w in p.workflows()] == ["Use"]
    assert {m.name for m in p.modules.values()} == {"main", "lib", "std.core"}
    call = next(c for c in p.calls if isinstance(c, A.Call))
    assert p.calls[call].kind == "workflow" and p.calls[call].target.name == "Square"


def test_two_imported_modules_with_the_same_name_clash(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "utils.kflow").write_text("const X = 1\n")
    (tmp_path / "b" / "utils.kflow").write_text("const Y = 2\n")
    main = tmp_path / "main.kflow"
    main.write_text('import "./a/utils.kflow" as ua\nimport "./b/utils.kflow" as ub\n'
                    "const Z = ua.X + ub.Y\n")
    p = load_program(str(main))
    assert errors(p) == ["E0103@2"]
    assert "module b.utils" in diag(p, "E0103").help
    (tmp_path / "b" / "utils.kflow").write_text("module b.utils\nconst Y = 2\n")
    assert errors(load_program(str(main))) == []
