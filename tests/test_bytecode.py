"""Bytecode: the opcode table, `kflow dis` listings (snapshots), the program hash and
the on-disk compile cache."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from kailash_dsl.compiler import bytecode as B
from kailash_dsl.compiler.pipeline import compile_file

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("KFLOW_DISABLE_PASSES", raising=False)


# --- the opcode table -----------------------------------------------------------------

def test_opcodes_are_numbered_in_table_order():
    names = [name for name, _, _ in B.OPCODES]
    assert len(set(names)) == len(names)
    assert [op.name for op in B.Op] == names
    assert [op.value for op in B.Op] == list(range(1, len(names) + 1))
    for name, operand, meaning in B.OPCODES:
        assert name.isupper() and operand and meaning


def test_docs_bytecode_lists_every_opcode():
    doc = (REPO / "docs" / "bytecode.md").read_text(encoding="utf-8")
    rows = {m.group(2): int(m.group(1))
            for m in re.finditer(r"^\|\s*(\d+)\s*\|\s*`([A-Z_]+)`\s*\|", doc, re.MULTILINE)}
    assert rows == {op.name: op.value for op in B.Op}, "regenerate the table in docs/bytecode.md"
    for name, operand, meaning in B.OPCODES:
        line = next(ln for ln in doc.splitlines() if f"`{name}`" in ln and ln.startswith("|"))
        assert meaning.split(";")[0][:40] in line, name


def test_docs_bytecode_listing_is_what_dis_prints(kflow, tmp_path):
    """The example listing in docs/bytecode.md is real: `kflow dis` prints exactly it."""
    doc = (REPO / "docs" / "bytecode.md").read_text(encoding="utf-8")
    source = re.search(r"<!-- dis-example: (\S+) -->\n```kflow\n(.*?)```", doc, re.DOTALL)
    listing = re.search(r"<!-- dis-listing -->\n```text\n(.*?)```", doc, re.DOTALL)
    assert source and listing
    (tmp_path / source.group(1)).write_text(source.group(2))
    res = kflow("dis", source.group(1), cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == listing.group(1), "update the listing in docs/bytecode.md"


def test_docs_durability_graph_is_what_graph_prints(kflow, tmp_path):
    """The Mermaid diagram in docs/durability.md is `kflow graph` of its example."""
    doc = (REPO / "docs" / "durability.md").read_text(encoding="utf-8")
    source = re.search(r"## The example\n\n```kflow\n(.*?)```", doc, re.DOTALL)
    graph = re.search(r"```mermaid\n(.*?)```", doc, re.DOTALL)
    assert source and graph
    (tmp_path / "booking.kflow").write_text(source.group(1))
    res = kflow("graph", "booking.kflow", cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == graph.group(1), "update the diagram in docs/durability.md"


# --- kflow dis ------------------------------------------------------------------------

ORDERS = """\
## Orders: a saga with a pivot, independent reads, a loop and a wait.
type Item { sku: str, qty: int = 1 }

@impl("shop:quote") @effect(read, resource: "catalogue")
node Quote(sku: str) -> {price: float}

@impl("shop:reserve") @effect(write, resource: "stock") @compensate(Release)
node Reserve(sku: str, qty: int) -> {reservation: str}

@impl("shop:release") @effect(write, resource: "stock")
node Release(reservation: str) -> null

@impl("shop:charge") @effect(write, resource: "payments")
@retry(attempts: 3, backoff: exponential(200ms, max: 2s))
node Charge(amount: float) -> {charge_id: str}

@impl("shop:mail") @effect(write, resource: "mail")
node Mail(to: str, body: str) -> null

workflow Order(email: str, items: list[Item], notify: bool = true) -> {charge: str, total: float} {
  let prices = for item in items {
    let q = Quote(sku: item.sku)
    yield q.price * item.qty
  }
  let total = sum(prices)
  transaction {
    let r = Reserve(sku: items[0].sku, qty: items[0].qty)
    let c = Charge(amount: total)
  }
  let ok: bool? = wait "confirm" timeout 1h
  Mail(to: email, body: "charged ${total}") when notify
  emit "order.charged" {total: total}
  return {charge: c.charge_id, total: total}
}
"""

FLOW = """\
@impl("flow:probe") @effect(read)
node Probe(tag: str) -> {tag: str}

@impl("flow:write") @effect(write, resource: "db")
node Write(tag: str) -> {tag: str}

@impl("flow:flaky") @effect(read)
node Flaky(tag: str) -> {tag: str}

workflow Child(n: int) -> int {
  if n > 10 {
    fail TooBig("n=${n}")
  } else if n < 0 {
    return 0
  }
  return n * 60 * 60
}

workflow Flow(n: int) -> {a: str, b: str, secs: int, tries: str} {
  let a = Probe(tag: "a")
  let b = Probe(tag: "b")
  parallel {
    let w1 = Write(tag: a.tag)
    let w2 = Write(tag: b.tag)
  }
  checkpoint
  let secs = Child(n: n)
  @timeout(2s)
  let f = try Flaky(tag: "x") else Probe(tag: "fallback")
  try {
    @retry(attempts: 2)
    let g = Flaky(tag: "y")
  } catch Timeout, StepFailed as e {
    sleep 10ms
    return {a: a.tag, b: b.tag, secs: secs, tries: e.kind}
  }
  return {a: a.tag, b: b.tag, secs: secs, tries: f.tag}
}
"""


@pytest.mark.parametrize("name, source", [("orders", ORDERS), ("flow", FLOW)],
                         ids=["orders", "flow"])
def test_dis_snapshot(kflow, tmp_path, snapshot, name, source):
    (tmp_path / f"{name}.kflow").write_text(source)
    res = kflow("dis", f"{name}.kflow", cwd=tmp_path)
    assert res.exit_code == 0, res.stderr
    assert res.stdout == snapshot


def test_dis_lists_every_nested_code_object(kflow, tmp_path):
    (tmp_path / "flow.kflow").write_text(FLOW)
    out = kflow("dis", "flow.kflow", "--workflow", "Flow", cwd=tmp_path).stdout
    heads = re.findall(r"^Disassembly of <code (\S+)> \((\w+)\):", out, re.MULTILINE)
    kinds = [k for _, k in heads]
    assert kinds[0] == "workflow"
    assert {"parallel", "try", "handler"} <= set(kinds)
    assert "workflow flow.Child" not in out  # --workflow picks one


def test_dis_refuses_a_program_with_errors(kflow, tmp_path):
    (tmp_path / "bad.kflow").write_text("workflow B() -> int {\n  return \"x\"\n}\n")
    res = kflow("dis", "bad.kflow", cwd=tmp_path)
    assert res.exit_code == 2
    assert "E0205" in res.stderr


# --- the program hash -----------------------------------------------------------------

HASHED = """\
@impl("h:write") @effect(write, resource: "db")
node Write(tag: str, n: int = 1) -> {tag: str}

@impl("h:read") @effect(read)
node Read(tag: str) -> {tag: str}

workflow H(x: int) -> str {
  let a = Read(tag: "a")
  let b = Write(tag: a.tag, n: x + 1)
  return b.tag
}
"""


def phash(tmp_path: Path, source: str, name: str = "h.kflow") -> str:
    path = tmp_path / name
    path.write_text(source)
    prog, diags = compile_file(path, use_cache=False)
    assert prog is not None, [d.message for d in diags]
    return prog.program_hash


def test_program_hash_ignores_whitespace_and_comments(tmp_path):
    base = phash(tmp_path, HASHED)
    assert re.fullmatch(r"[0-9a-f]{16}", base)
    edited = ("# a comment at the top\n\n" + HASHED)
    edited = edited.replace("let a = Read(tag: \"a\")",
                            "## a doc-like comment\n  let a   =   Read( tag : \"a\" )  # trailing")
    edited = edited.replace("n: x + 1", "n: x+1").replace("\n}\n", "\n\n\n}\n")
    assert phash(tmp_path, edited) == base
    assert phash(tmp_path, HASHED.replace("  ", "\t")) == base


@pytest.mark.parametrize("change", [
    ('let b = Write(tag: a.tag, n: x + 1)', 'let b = Write(tag: a.tag, n: x + 2)'),
    ('let b = Write(tag: a.tag, n: x + 1)', 'let b = Write(tag: a.tag)'),
    ('let b = Write(', 'let c = Write('),
    ('let a = Read(tag: "a")', 'let a = Read(tag: "a")\n  let extra = Write(tag: "e")'),
    ('@effect(write, resource: "db")', '@effect(write, resource: "other")'),
    ('@impl("h:write")', '@impl("h:write2")'),
    ('@impl("h:read") @effect(read)', '@impl("h:read") @effect(read) @retry(attempts: 5)'),
])
def test_program_hash_changes_when_a_step_changes(tmp_path, change):
    old, new = change
    assert old in HASHED
    if "let c = Write(" in new:
        changed = HASHED.replace(old, new).replace("return b.tag", "return c.tag")
    else:
        changed = HASHED.replace(old, new)
    assert phash(tmp_path, changed) != phash(tmp_path, HASHED)


DEFAULTS = """\
type Item { sku: str, qty: int = 1 }

@impl("h:write") @effect(write, resource: "db")
node Write(tag: str, n: int = 1) -> {tag: str}

workflow D(x: int = 1, items: list[Item]) -> str {
  let b = Write(tag: "t${x + sum([i.qty for i in items])}")
  return b.tag
}
"""


@pytest.mark.parametrize("old, new", [
    ("n: int = 1", "n: int = 2"),  # a node parameter's default, which the step relies on
    ("x: int = 1", "x: int = 2"),  # a workflow parameter's default (filled on resume)
    ("qty: int = 1", "qty: int = 2"),  # a record field's default (filled on resume)
], ids=["node-param", "workflow-param", "record-field"])
def test_program_hash_changes_with_a_default(tmp_path, old, new):
    """A changed default changes what a resumed run computes, so it is a change (§7.4)."""
    assert phash(tmp_path, DEFAULTS.replace(old, new)) != phash(tmp_path, DEFAULTS)


COALESCE = """\
workflow Q(x: int?) -> int {
  let a: int? = wait "go" timeout 1h
  return a ?? (x ?? 0)
}
"""


def test_program_hash_of_a_coalescing_program_ignores_whitespace(tmp_path):
    assert phash(tmp_path, COALESCE.replace("(x ?? 0)", "( x ?? 0 )")) == \
        phash(tmp_path, COALESCE)


def test_program_hash_is_the_same_in_another_process(tmp_path):
    """A resume in another process (a cold cache) must see the same hash, or it is
    refused with E0601 although nothing changed."""
    (tmp_path / "q.kflow").write_text(HASHED + "\n" + COALESCE)
    code = ("import sys; from kailash_dsl.compiler.pipeline import compile_file; "
            "print(compile_file(sys.argv[1], use_cache=False)[0].program_hash)")
    hashes = {subprocess.run([sys.executable, "-c", code, str(tmp_path / "q.kflow")],
                             capture_output=True, text=True, check=True).stdout.strip()
              for _ in range(2)}
    assert len(hashes) == 1, hashes


# --- the on-disk cache ----------------------------------------------------------------

def test_cache_hit_skips_the_checker(tmp_path, monkeypatch):
    path = tmp_path / "h.kflow"
    path.write_text(HASHED)
    first, _ = compile_file(path)
    assert list((tmp_path / "cache").glob("*.kfc"))

    from kailash_dsl.compiler import api

    def boom(*a, **kw):
        raise AssertionError("the checker ran on a cache hit")

    monkeypatch.setattr(api, "load_program", boom)
    second, diags = compile_file(path)
    assert diags == []
    assert second.program_hash == first.program_hash
    assert second is not first  # unpickled from disk
    # an edit (even whitespace) is a miss: the checker runs again
    path.write_text(HASHED + "\n")
    with pytest.raises(AssertionError, match="checker ran"):
        compile_file(path)


def test_cache_miss_when_an_imported_file_changes(tmp_path, monkeypatch):
    (tmp_path / "lib.kflow").write_text("workflow Sq(n: int) -> int {\n  return n * n\n}\n")
    (tmp_path / "main.kflow").write_text(
        'import "./lib.kflow" as lib\n\nworkflow M(n: int) -> int {\n'
        '  let s = lib.Sq(n: n)\n  return s\n}\n')
    compile_file(tmp_path / "main.kflow")
    from kailash_dsl.compiler import api

    calls = []
    real = api.load_program
    monkeypatch.setattr(api, "load_program", lambda p: calls.append(p) or real(p))
    compile_file(tmp_path / "main.kflow")
    assert calls == []
    (tmp_path / "lib.kflow").write_text("workflow Sq(n: int) -> int {\n  return n * n * n\n}\n")
    prog, _ = compile_file(tmp_path / "main.kflow")
    assert len(calls) == 1
    assert "(S[1] * S[1]) * S[1]" in " ".join(
        ins.arg.source for ins in prog.find_workflow("Sq").code.instrs
        if ins.op is B.Op.RETURN)


def test_cache_is_per_disabled_pass_set(tmp_path):
    path = tmp_path / "h.kflow"
    path.write_text(HASHED)
    on, _ = compile_file(path)
    off, _ = compile_file(path, disabled=("place_checkpoints",))
    assert len(list((tmp_path / "cache").glob("*.kfc"))) == 2
    flushes_on = [ins.arg.flush_before for ins in on.find_workflow("H").code.instrs
                  if ins.op is B.Op.STEP]
    flushes_off = [ins.arg.flush_before for ins in off.find_workflow("H").code.instrs
                   if ins.op is B.Op.STEP]
    assert flushes_on == [False, True] and flushes_off == [False, False]


def test_corrupt_cache_files_are_ignored(tmp_path):
    path = tmp_path / "h.kflow"
    path.write_text(HASHED)
    compile_file(path)
    for f in (tmp_path / "cache").glob("*.kfc"):
        f.write_bytes(b"garbage")
    prog, _ = compile_file(path)
    assert prog is not None and prog.find_workflow("H") is not None


def test_dumps_loads_round_trip(tmp_path):
    path = tmp_path / "h.kflow"
    path.write_text(HASHED)
    prog, _ = compile_file(path, use_cache=False)
    back = B.loads(B.dumps(prog))
    assert back.program_hash == prog.program_hash
    assert B.program_hash(back) == prog.program_hash
    assert B.loads(b"not a pickle") is None
    import pickle

    assert B.loads(pickle.dumps((B.FORMAT_VERSION + 1, prog))) is None
