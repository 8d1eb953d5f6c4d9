#!/usr/bin/env python3
"""How fast is the kflow front end?

Generates a 10,000-line program (record types, enums, nodes with attributes, workflows
with loops, comprehensions, transactions and conditionals, importing a generated second
file) and prints, in one run:

* parse: lines/second
* parse + check (the whole ``kflow check`` pipeline, imports included): lines/second
* both as a ratio to CPython's ``ast.parse`` on a generated Python file of the same line
  count (target: parse + check within 10x of ``ast.parse``)
* cold ``kflow check`` of a 50-line file (a fresh process, best of 10) next to
  ``python -c pass``

    python bench/check_speed.py [--lines 10000] [--repeat 5] [--profile]

``--profile`` adds a cProfile of one parse + check, top functions by own time.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIB = '''\
module benchlib

## A record every flow can point at.
type Base {
  id: str
  score: float = 0.0
}

## Look a key up.
@impl("bench_nodes:lookup")
@effect(read)
node Lookup(key: str) -> { score: float, found: bool }

const LIMIT = 100.0
'''

KFLOW_BLOCK = '''\
## Record number {i}.
type Rec{i} {
  id: str
  qty: int = 1
  tags: list[str]
  parent: lib.Base? = null
}
enum Kind{i} { small, medium, large }

## Fetch something for flow {i}.
@impl("bench_nodes:fetch")
@effect(read)
@retry(attempts: 3, backoff: exponential(100ms, max: 2s))
node Fetch{i}(key: str, n: int = 1) -> { value: float, ok: bool }

@impl("bench_nodes:save")
@effect(write, resource: "db")
@compensate(Undo{i})
node Save{i}(key: str, value: float) -> { id: str }

@impl("bench_nodes:undo")
@effect(write, resource: "db")
node Undo{i}(id: str) -> null

## Flow number {i}.
workflow Flow{i}(items: list[Rec{i}], scale: float = 1.5) -> { total: float, ids: list[str] } {
  let base = lib.Lookup(key: "k{i}")
  let values = for item in items {
    let f = Fetch{i}(key: item.id, n: item.qty)
    yield f.value * scale
  }
  let big = [v * 2.0 for v in values if v > 10.0]
  let total = sum(values) + base.score
  if total > lib.LIMIT {
    emit "big" {flow: "Flow{i}", total: total}
  } else {
    let note = "small ${total}"
    emit "small" {note: note}
  }
  transaction {
    let s = Save{i}(key: "k{i}", value: total)
  }
  let label = if len(big) > 3 then "many" else "few"
  return {total: total, ids: [s.id, label]}
}

'''

PY_BLOCK = '''\
@dataclass
class Rec{i}:
    """Record number {i}."""
    id: str
    qty: int = 1
    tags: list = field(default_factory=list)
    parent: Optional[Base] = None


class Kind{i}(Enum):
    small = 1
    medium = 2
    large = 3


@retry(attempts=3, backoff=exponential(0.1, max=2.0))
def fetch{i}(key: str, n: int = 1) -> dict:
    """Fetch something for flow {i}."""
    return {"value": float(n), "ok": True}


def save{i}(key: str, value: float) -> dict:
    return {"id": key}


def undo{i}(id: str) -> None:
    return None


def flow{i}(items: list, scale: float = 1.5) -> dict:
    """Flow number {i}."""
    base = lookup(key="k{i}")
    values = []
    for item in items:
        f = fetch{i}(key=item.id, n=item.qty)
        values.append(f["value"] * scale)
    big = [v * 2.0 for v in values if v > 10.0]
    total = sum(values) + base["score"]
    if total > LIMIT:
        emit("big", {"flow": "Flow{i}", "total": total})
    else:
        note = f"small {total}"
        emit("small", {"note": note})
    with transaction():
        s = save{i}(key="k{i}", value=total)
    label = "many" if len(big) > 3 else "few"
    return {"total": total, "ids": [s["id"], label]}

'''

PY_HEADER = '''\
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from benchlib import Base, LIMIT, emit, exponential, lookup, retry, transaction


'''

SMALL = '''\
type Item { sku: str, qty: int = 1 }
type Order {
  id: str
  email: str
  total: float
  items: list[Item]
  coupon: str? = null
}
enum Status { pending, paid, failed }

@impl("x:validate")
@effect(pure)
node Validate(order: Order) -> { ok: bool, reason: str }

@impl("x:charge")
@effect(write, resource: "payments")
node Charge(amount: float, currency: str = "USD") -> { charge_id: str, status: Status }

@impl("x:quote")
@effect(read)
node Quote(sku: str) -> { price: float }

workflow ProcessOrder(order: Order, send_mail: bool = true) -> { order_id: str, total: float } {
  let valid = Validate(order: order)
  if not valid.ok {
    fail "invalid order ${order.id}: ${valid.reason}"
  }
  let charge = Charge(amount: order.total)
  let lines = for item in order.items {
    let p = Quote(sku: item.sku)
    yield p.price * item.qty
  }
  let many = [i.sku for i in order.items if i.qty > 1]
  emit "order.paid" {order_id: order.id, charge: charge.charge_id, many: many}
  return {order_id: order.id, total: sum(lines)}
}

workflow Other(n: int) -> int {
  let a = n * 2
  let b = a + 1
  let c = if b > 3 then b else a
  return c
}

workflow Third(s: str) -> str {
  let t = upper(s)
  return lower(t) + "!"
}
'''


def generate(lines: int, block: str, header: str = "") -> str:
    out = [header]
    count = header.count("\n")
    i = 0
    while count < lines:
        text = block.replace("{i}", str(i))
        out.append(text)
        count += text.count("\n")
        i += 1
    return "".join(out)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def kflow_command() -> list[str]:
    script = Path(sys.executable).with_name("kflow")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "kailash_dsl"]


def cold(cmd: list[str], runs: int = 10, cwd: str | None = None) -> tuple[float, float, float]:
    """Best and median wall time, and best CPU time (user + sys: steadier on a busy box)."""
    import resource

    times = []
    cpu = []
    for _ in range(runs):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=False)
        times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
    return min(times), statistics.median(times), min(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--keep", help="write the generated files to this folder")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from kailash_dsl.grammar.parser import get_parser, parse

    try:
        from kailash_dsl.compiler.api import check_paths
    except ImportError:
        check_paths = None
    try:
        from kailash_dsl.compiler.loader import clear_cache
    except ImportError:
        clear_cache = None

    tmp = Path(args.keep or tempfile.mkdtemp(prefix="kflow-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    lib_text = LIB
    main_text = 'import "./benchlib.kflow" as lib\n\n' + generate(
        args.lines - LIB.count("\n") - 2, KFLOW_BLOCK)
    (tmp / "benchlib.kflow").write_text(lib_text, encoding="utf-8")
    (tmp / "main.kflow").write_text(main_text, encoding="utf-8")
    (tmp / "small.kflow").write_text(SMALL, encoding="utf-8")
    n_lines = lib_text.count("\n") + main_text.count("\n")
    py_text = generate(n_lines, PY_BLOCK, PY_HEADER)
    py_lines = py_text.count("\n")

    get_parser()  # build (or load) the LALR tables once, as any warm process has
    _, diags = parse(main_text, str(tmp / "main.kflow"))
    if diags:
        print(f"generated program has syntax errors: {diags[:3]}", file=sys.stderr)
        return 1

    t_py = best(lambda: ast.parse(py_text), args.repeat)
    t_parse = best(lambda: (parse(lib_text, "benchlib.kflow"), parse(main_text, "main.kflow")),
                   args.repeat)

    print(f"program: {n_lines} lines of kflow in 2 files; Python twin: {py_lines} lines")
    print(f"ast.parse (CPython {sys.version.split()[0]}): {t_py * 1000:8.1f} ms  "
          f"{py_lines / t_py:>10,.0f} lines/s")
    print(f"kflow parse:               {t_parse * 1000:8.1f} ms  {n_lines / t_parse:>10,.0f} "
          f"lines/s  ({t_parse / t_py:.1f}x ast.parse)")
    if check_paths is not None:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            result = check_paths(["main.kflow"], explain=False)
            errs = [d for d in result.diagnostics if d.is_error]
            if errs:
                print(f"generated program has {len(errs)} errors, first: {errs[0]}",
                      file=sys.stderr)
                return 1
            def cold_check():
                if clear_cache is not None:
                    clear_cache()  # the loader caches parses by mtime: measure parsing too
                check_paths(["main.kflow"], explain=False)

            t_check = best(cold_check, args.repeat)
            check_paths(["main.kflow"], explain=False)
            t_warm = best(lambda: check_paths(["main.kflow"], explain=False), args.repeat)
        finally:
            os.chdir(cwd)
        verdict = "OK" if t_check / t_py <= 10 else "over the 10x target"
        print(f"kflow parse+check:         {t_check * 1000:8.1f} ms  {n_lines / t_check:>10,.0f} "
              f"lines/s  ({t_check / t_py:.1f}x ast.parse: {verdict})")
        print(f"kflow check alone:         {t_warm * 1000:8.1f} ms  {n_lines / t_warm:>10,.0f} "
              f"lines/s  (parses cached)")
    else:
        print("kflow parse+check:         (kailash_dsl.compiler.api not available)")

    kflow = kflow_command()
    c_pass = cold([sys.executable, "-c", "pass"])
    c_check = cold(kflow + ["check", "small.kflow"], cwd=str(tmp))
    c_json = cold(kflow + ["check", "small.kflow", "--format", "json"], cwd=str(tmp))
    for label, c in (("cold `python -c pass`:", c_pass),
                     ("cold `kflow check` (50 lines):", c_check),
                     ("cold `kflow check --format json`:", c_json)):
        print(f"{label:<38} best {c[0] * 1000:6.1f} ms  median {c[1] * 1000:6.1f} ms  "
              f"cpu {c[2] * 1000:6.1f} ms")
    print(f"  (kflow = {' '.join(kflow)}; target: under 200 ms)")

    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        os.chdir(tmp)
        if clear_cache is not None:
            clear_cache()
        prof.enable()
        if check_paths is not None:
            check_paths(["main.kflow"], explain=False)
        else:
            parse(main_text, "main.kflow")
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
