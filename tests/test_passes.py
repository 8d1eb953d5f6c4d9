"""Each optimisation pass of kailash_dsl.compiler.passes.PASSES on small programs.

A program is checked from a temporary file, lowered to IR, and only the passes a test
names are applied, so each test sees exactly one pass at work (plus what it depends on).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kailash_dsl.compiler.api import load_program
from kailash_dsl.compiler.dis import disassemble_program
from kailash_dsl.compiler.ir import IR, IRNode, build_ir, iter_nodes
from kailash_dsl.compiler.passes import PASSES, run_passes
from kailash_dsl.compiler.pipeline import compile_file
from kailash_dsl.grammar import ast as A

PASS_NAMES = [name for name, _ in PASSES]

NODES = """\
@impl("n:pure") @effect(pure)
node Square(n: int) -> int

@impl("n:read") @effect(read)
node Probe(tag: str) -> {tag: str}

@impl("n:read") @effect(read, resource: "db")
node ReadDb(tag: str) -> {tag: str}

@impl("n:write") @effect(write, resource: "db")
node WriteDb(tag: str) -> {tag: str}

@impl("n:write") @effect(write, resource: "mail")
node Mail(tag: str) -> {tag: str}

@impl("n:write") @effect(write)
node WriteAny(tag: str) -> {tag: str}

@impl("n:write") @effect(write, resource: "db") @compensate(Undo)
node Book(tag: str) -> {tag: str}

@impl("n:write") @effect(write, resource: "db")
node Undo(tag: str) -> {tag: str}

@impl("n:Ledger") @effect(write, resource: "ledger") @transactional(resource: "ledger")
node Move(tag: str) -> {tag: str}
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KFLOW_DISABLE_PASSES", raising=False)


def lower(tmp_path: Path, body: str, passes=(), *, name: str = "p.kflow") -> IR:
    """Check `NODES + body`, build the IR and run only the named passes, in order."""
    path = tmp_path / name
    path.write_text(NODES + "\n" + body)
    program = load_program(path)
    assert not program.has_errors, [d.message for d in program.diagnostics if d.is_error]
    ir = build_ir(program)
    for pname, fn in PASSES:
        if pname in passes:
            ir = fn(ir)
    return ir


def nodes(ir: IR, workflow: str = "W") -> dict[str, IRNode]:
    (wf,) = [w for w in ir.workflows.values() if w.info.name == workflow]
    return {n.key: n for n in iter_nodes(wf.body)}


def effect_edges(ir: IR, workflow: str = "W") -> set[tuple[str, str]]:
    (wf,) = [w for w in ir.workflows.values() if w.info.name == workflow]
    out = set()

    def walk(region):
        keys = {n.id: n.key for n in region.nodes}
        for a, b, data in region.graph.edges(data=True):
            if data.get("kind") == "effect":
                out.add((keys[a], keys[b]))
        for n in region.nodes:
            for sub in n.regions:
                walk(sub)

    walk(wf.body)
    return out


def test_the_pass_list():
    assert PASS_NAMES == ["fold_constants", "eliminate_dead_pure", "schedule_effects",
                          "lower_transactions", "place_checkpoints"]


# --- fold_constants -------------------------------------------------------------------

FOLD = """\
workflow W(x: int) -> {secs: int, day: int, mixed: int, s: str, b: bool, neg: int} {
  let secs = 60 * 60
  let day = 60 * 60 * 24
  let mixed = x * (2 + 3)
  let s = "a" + "b"
  let b = 1 < 2
  let neg = -(4 - 1)
  return {secs: secs, day: day, mixed: mixed, s: s, b: b, neg: neg}
}
"""


def test_fold_constants_folds_arithmetic(tmp_path):
    ir = lower(tmp_path, FOLD, ["fold_constants"])
    folded = {lit.value for lit in ir.rewrites.values() if isinstance(lit, A.Literal)}
    assert {3600, 86400, 5, "ab", True, -3} <= folded
    for lit in ir.rewrites.values():
        assert isinstance(lit, A.Literal)


def test_fold_constants_in_the_bytecode(tmp_path):
    path = tmp_path / "p.kflow"
    path.write_text(NODES + FOLD)
    prog, _ = compile_file(path, use_cache=False)
    text = disassemble_program(prog, workflow="W")
    assert "LET          2(secs)        3600" in text
    assert "86400" in text and "(S[1] * 5)" in text and "'ab'" in text
    assert "60 * 60" not in text and "(60 * 60)" not in text
    off, _ = compile_file(path, use_cache=False, disabled=("fold_constants",))
    text_off = disassemble_program(off, workflow="W")
    assert "(60 * 60)" in text_off
    assert "3600" not in text_off


def test_fold_constants_leaves_division_by_zero_for_run_time(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> float {
  let r = 1 / 0
  return r
}
""", ["fold_constants"])
    # `/` is not folded (int / int is a float at run time, and x / 0 fails there with
    # the step's position)
    assert not any(isinstance(e, A.Binary) and e.op == "/" for e in ir.rewrites)


def test_fold_constants_does_not_fold_names(tmp_path):
    ir = lower(tmp_path, """\
workflow W(x: int) -> int {
  let y = x + 1
  return y
}
""", ["fold_constants"])
    assert ir.rewrites == {}


# --- eliminate_dead_pure --------------------------------------------------------------

DEAD = """\
workflow W(x: int) -> int {
  let unused = Square(n: 3)
  let unused_value = x * 2
  let used = Square(n: x)
  let id = uuid()
  let written = WriteDb(tag: "w")
  let read = Probe(tag: "r")
  return used
}
"""


def test_dead_pure_drops_unread_pure_values(tmp_path):
    ir = lower(tmp_path, DEAD, ["eliminate_dead_pure"])
    n = nodes(ir)
    assert n["unused"].dead and "dead" in n["unused"].note
    assert n["unused_value"].dead
    assert not n["used"].dead
    assert not n["id"].dead  # a journaled builtin keeps its place
    assert not n["written"].dead and not n["read"].dead  # effects are the point


def test_dead_pure_emits_no_instruction(tmp_path):
    path = tmp_path / "p.kflow"
    path.write_text(NODES + DEAD)
    prog, _ = compile_file(path, use_cache=False)
    text = disassemble_program(prog, workflow="W")
    assert "key='unused'" not in text and "key='used'" in text
    assert "(S[1] * 2)" not in text
    off, _ = compile_file(path, use_cache=False, disabled=("eliminate_dead_pure",))
    assert "key='unused'" in disassemble_program(off, workflow="W")


def test_dead_pure_keeps_values_read_later_and_in_nested_blocks(tmp_path):
    ir = lower(tmp_path, """\
workflow W(xs: list[int]) -> list[int] {
  let k = 10
  let out = for x in xs {
    let sq = Square(n: x + k)
    yield sq
  }
  return out
}
""", ["eliminate_dead_pure"])
    n = nodes(ir)
    assert not n["k"].dead and not n["sq"].dead


# --- schedule_effects -----------------------------------------------------------------

def test_schedule_two_writes_on_one_resource_get_an_edge(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  let a = WriteDb(tag: "a")
  let b = WriteDb(tag: "b")
  let c = Mail(tag: "c")
  return null
}
""", ["schedule_effects"])
    assert effect_edges(ir) == {("a", "b")}


def test_schedule_reads_commute(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  let a = Probe(tag: "a")
  let b = Probe(tag: "b")
  let c = ReadDb(tag: "c")
  let p = Square(n: 1)
  return null
}
""", ["schedule_effects"])
    assert effect_edges(ir) == set()


def test_schedule_write_conflicts_with_reads_of_its_resource_and_unscoped_steps(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  let r = ReadDb(tag: "r")
  let w = WriteDb(tag: "w")
  let m = Mail(tag: "m")
  let any = WriteAny(tag: "any")
  let p = Probe(tag: "p")
  let sq = Square(n: 2)
  return null
}
""", ["schedule_effects"])
    edges = effect_edges(ir)
    assert ("r", "w") in edges
    assert ("w", "m") not in edges
    # a write with no resource is on every resource: it waits for every non-pure step
    assert {("r", "any"), ("w", "any"), ("m", "any")} <= edges
    assert ("any", "p") in edges  # and a later read waits for it
    assert not any("sq" in e for e in edges)


def test_schedule_parallel_block_ignores_conflicts(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  parallel {
    let a = WriteDb(tag: "a")
    let b = WriteDb(tag: "b")
  }
  return null
}
""", ["schedule_effects"])
    assert effect_edges(ir) == set()


def test_schedule_transaction_serialises_writes_on_different_resources(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  transaction saga {
    let a = Book(tag: "a")
    let m = Mail(tag: "m")
  }
  return null
}
""", ["schedule_effects"])
    assert ("a", "m") in effect_edges(ir)


def test_schedule_data_edges_exist_before_the_pass(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  let a = Probe(tag: "a")
  let b = Probe(tag: a.tag)
  return null
}
""", [])
    (wf,) = ir.workflows.values()
    kinds = {d["kind"] for _, _, d in wf.body.graph.edges(data=True)}
    assert kinds == {"data"}


# --- lower_transactions ---------------------------------------------------------------

def test_lower_transactions_notes_the_pattern(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  transaction {
    let a = Book(tag: "a")
    let b = Book(tag: "b")
    let pivot = Mail(tag: "p")
  }
  transaction {
    let x = Move(tag: "x")
    let y = Move(tag: "y")
  }
  return null
}
""", ["lower_transactions"])
    txs = [n for n in nodes(ir).values() if n.kind == "tx"]
    assert len(txs) == 2
    assert txs[0].note.startswith("saga:") and "pivot" in txs[0].note
    assert txs[1].note.startswith("2pc:")
    ir_off = lower(tmp_path, "workflow W() -> null {\n  transaction {\n"
                   "    let a = Book(tag: \"a\")\n  }\n  return null\n}\n", [], name="q.kflow")
    assert [n.note for n in nodes(ir_off).values() if n.kind == "tx"] == [""]


def test_lower_transactions_in_dis(tmp_path):
    path = tmp_path / "p.kflow"
    path.write_text(NODES + """\
workflow W() -> null {
  transaction 2pc {
    let x = Move(tag: "x")
    let y = Move(tag: "y")
  }
  return null
}
""")
    prog, _ = compile_file(path, use_cache=False)
    assert "TX           tx             2pc" in disassemble_program(prog, workflow="W")


# --- place_checkpoints ----------------------------------------------------------------

def test_checkpoint_before_a_write_after_reads_but_not_before_the_first_write(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  let w1 = WriteDb(tag: "first")
  let sq = Square(n: 2)
  let r1 = Probe(tag: "r1")
  let r2 = Probe(tag: "r2")
  let w2 = Mail(tag: "second")
  let sq2 = Square(n: 3)
  return null
}
""", ["place_checkpoints"])
    n = nodes(ir)
    assert not n["w1"].flush_before
    assert n["w2"].flush_before  # one group commit covers w1, r1 and r2
    assert not any(n[k].flush_before for k in ("sq", "r1", "r2", "sq2"))


def test_checkpoint_not_needed_after_only_pure_work(tmp_path):
    ir = lower(tmp_path, """\
workflow W(x: int) -> null {
  let a = Square(n: x)
  let b = a + 1
  let w = WriteDb(tag: "w${b}")
  return null
}
""", ["place_checkpoints"])
    assert not nodes(ir)["w"].flush_before


def test_checkpoint_after_a_journaled_builtin(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  let id = uuid()
  let w = WriteDb(tag: id)
  return null
}
""", ["place_checkpoints"])
    assert nodes(ir)["w"].flush_before


def test_checkpoint_a_wait_or_sleep_commits_already(tmp_path):
    ir = lower(tmp_path, """\
workflow W() -> null {
  let r = Probe(tag: "r")
  sleep 1s
  let w = WriteDb(tag: "w")
  let r2 = Probe(tag: "r2")
  let a: str? = wait "go" timeout 1s
  let w2 = WriteDb(tag: "w2")
  return null
}
""", ["place_checkpoints"])
    n = nodes(ir)
    assert not n["w"].flush_before
    assert not n["w2"].flush_before


def test_checkpoint_in_a_loop_body_that_writes(tmp_path):
    ir = lower(tmp_path, """\
workflow W(xs: list[str]) -> null {
  for x in xs {
    let w = WriteDb(tag: x)
  }
  return null
}
""", ["place_checkpoints"])
    # dirty from the second iteration on: the first write of iteration 2 follows the last
    # write of iteration 1
    assert nodes(ir)["w"].flush_before


def test_explicit_checkpoint_is_a_flush_instruction(tmp_path):
    path = tmp_path / "p.kflow"
    path.write_text(NODES + """\
workflow W() -> null {
  let r = Probe(tag: "r")
  checkpoint
  return null
}
""")
    prog, _ = compile_file(path, use_cache=False)
    assert "FLUSH" in disassemble_program(prog, workflow="W")


# --- the pass manager -----------------------------------------------------------------

def test_run_passes_applies_all_in_order(tmp_path):
    path = tmp_path / "p.kflow"
    path.write_text(NODES + FOLD)
    ir = run_passes(build_ir(load_program(path)))
    assert ir.applied == PASS_NAMES


def test_passes_can_be_switched_off_by_name_and_env(tmp_path, monkeypatch):
    path = tmp_path / "p.kflow"
    path.write_text(NODES + FOLD)
    ir = run_passes(build_ir(load_program(path)), ["fold_constants"])
    assert ir.applied == PASS_NAMES[1:] and ir.rewrites == {}
    monkeypatch.setenv("KFLOW_DISABLE_PASSES", "place_checkpoints,schedule_effects")
    ir = run_passes(build_ir(load_program(path)))
    assert ir.applied == ["fold_constants", "eliminate_dead_pure", "lower_transactions"]


def test_dis_no_pass_option(kflow, tmp_path):
    path = tmp_path / "p.kflow"
    path.write_text(NODES + FOLD)
    on = kflow("dis", path, "--workflow", "W")
    off = kflow("dis", path, "--workflow", "W", "--no-pass", "fold_constants")
    assert on.exit_code == 0 and off.exit_code == 0
    assert "3600" in on.stdout and "(60 * 60)" in off.stdout
