#!/usr/bin/env python3
"""How fast is the durable VM?

Generates the programs and their node module into a temporary folder and drives the VM
in-process through ``kailash_dsl.runtime.api.start`` (warm compile cache, a fresh
journal per run), printing in one run:

* **pure chain**: per-step overhead of a 1,000-step chain of a ``pure`` Python node
  (each step reads the previous one), next to calling the same function 1,000 times in
  a plain asyncio loop. Target: ≤ 20 µs per step.
* **write chain**: per-step cost of a 1,000-step chain of ``write`` steps (each one is
  journaled before the next starts), next to one aiosqlite ``INSERT`` + ``COMMIT`` per
  step (WAL, synchronous=NORMAL) on the same disk. Target: ≤ 1.5× the raw cost.
* **group commits**: journal transactions (``Run.flushes``) per run next to steps, for
  each program.
* **fan-out**: wall time of 100 independent ``read`` steps that each sleep 50 ms
  (synchronous implementations run in worker threads; an ``async`` variant too).
  Target: within 150 ms.

Fixed costs (opening the journal, creating the run, the final commit) are measured on a
one-step program and subtracted from the per-step figures, and so is unpickling the
cached program (which grows with its size); the fan-out figure is the whole ``start``
call. Times are the best of ``--repeat`` runs.

    python bench/vm_speed.py [--steps 1000] [--repeat 5] [--profile]

``--profile`` prints a cProfile summary (top functions by cumulative and own time) of
each benchmark that misses its target, or of all of them with ``--profile all``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import uuid
from pathlib import Path

NODES = '''\
import asyncio
import time


def inc(n):
    return n + 1


def write(n):
    return n + 1


async def awrite(n):
    return n + 1


def sleepy(tag):
    time.sleep(0.05)
    return tag


async def asleep(tag):
    await asyncio.sleep(0.05)
    return tag
'''

HEADER = '''\
@impl("vm_bench_nodes:inc")
@effect(pure)
node Inc(n: int) -> int

@impl("vm_bench_nodes:write")
@effect(write, resource: "db")
node Write(n: int) -> int

@impl("vm_bench_nodes:awrite")
@effect(write, resource: "db")
node AWrite(n: int) -> int

@impl("vm_bench_nodes:sleepy")
@effect(read)
node Sleepy(tag: int) -> int

@impl("vm_bench_nodes:asleep")
@effect(read)
node ASleepy(tag: int) -> int
'''


def chain(name: str, node: str, steps: int) -> str:
    lines = [f"workflow {name}(start: int) -> int {{", f"  let s0 = {node}(n: start)"]
    for i in range(1, steps):
        lines.append(f"  let s{i} = {node}(n: s{i - 1})")
    lines.append(f"  return s{steps - 1}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def fanout(name: str, node: str, steps: int) -> str:
    lines = [f"workflow {name}() -> int {{"]
    for i in range(steps):
        lines.append(f"  let r{i} = {node}(tag: {i})")
    lines.append("  return " + " + ".join(f"r{i}" for i in range(steps)))
    lines.append("}")
    return "\n".join(lines) + "\n"


class Bench:
    def __init__(self, root: Path, steps: int, repeat: int) -> None:
        self.root = root
        self.steps = steps
        self.repeat = repeat
        self.counter = 0
        (root / "vm_bench_nodes.py").write_text(NODES)
        sys.path.insert(0, str(root))
        os.environ["KFLOW_CACHE_DIR"] = str(root / "cache")
        self.files = {}
        for name, text in {
            "pure": chain("PureChain", "Inc", steps),
            "pure1": chain("PureOne", "Inc", 1),
            "write": chain("WriteChain", "Write", steps),
            "write1": chain("WriteOne", "Write", 1),
            "awrite": chain("AWriteChain", "AWrite", steps),
            "awrite1": chain("AWriteOne", "AWrite", 1),
            "fan": fanout("FanOut", "Sleepy", 100),
            "afan": fanout("AsyncFanOut", "ASleepy", 100),
        }.items():
            path = root / f"{name}.kflow"
            path.write_text(HEADER + "\n" + text)
            self.files[name] = path

    async def start(self, name: str, input_data: dict):
        from kailash_dsl.runtime import api

        self.counter += 1
        db = self.root / f"runs-{self.counter}.db"
        t0 = time.perf_counter()
        outcome = await api.start(str(self.files[name]), None, input_data, run_id=None, db=db,
                                  block_for=30.0)
        elapsed = time.perf_counter() - t0
        assert outcome.status == "completed", outcome.result
        return elapsed, outcome

    def timed(self, name: str, input_data: dict) -> tuple[float, int, object]:
        """Best wall time of `repeat` runs (after one warm-up that fills the cache)."""
        loop = asyncio.new_event_loop()
        try:
            from kailash_dsl.runtime.nodes import executor

            loop.set_default_executor(executor())
            loop.run_until_complete(self.start(name, input_data))  # compile + warm up
            times, flushes, out = [], 0, None
            for _ in range(self.repeat):
                t, outcome = loop.run_until_complete(self.start(name, input_data))
                times.append(t)
                flushes, out = outcome.run.flushes, outcome.result["output"]
            return min(times), flushes, out
        finally:
            loop.close()

    def per_step(self, name: str, one: str, input_data: dict,
                 baseline=None) -> tuple[float, float, int, object, float]:
        """Seconds per step of the `name` chain beyond the fixed cost of a run, which is
        measured on the one-step program `one`; loading the cached program (bigger for a
        bigger program) is measured apart and left out of both. The long run, the short
        run and the loads alternate, so a busy moment of the machine hits all of them."""
        from kailash_dsl.runtime import api
        from kailash_dsl.runtime.nodes import executor

        loop = asyncio.new_event_loop()
        loop.set_default_executor(executor())
        best = {"n": float("inf"), "1": float("inf"), "ln": float("inf"), "l1": float("inf"),
                "base": float("inf")}
        flushes, out = 0, None
        try:
            for prog in (name, one):  # compile + warm up
                loop.run_until_complete(self.start(prog, input_data))
            for _ in range(self.repeat):
                t, outcome = loop.run_until_complete(self.start(name, input_data))
                best["n"] = min(best["n"], t)
                flushes, out = outcome.run.flushes, outcome.result["output"]
                t, _ = loop.run_until_complete(self.start(one, input_data))
                best["1"] = min(best["1"], t)
                for key, prog in (("ln", name), ("l1", one)):
                    t0 = time.perf_counter()
                    api.load(self.files[prog])
                    best[key] = min(best[key], time.perf_counter() - t0)
                if baseline is not None:
                    best["base"] = min(best["base"], baseline())
        finally:
            loop.close()
        per = ((best["n"] - best["ln"]) - (best["1"] - best["l1"])) / (self.steps - 1)
        return per, best["1"], flushes, out, best["base"]

    def breakdown(self, name: str, input_data: dict) -> dict[str, float]:
        """Where a run's wall time goes: awaiting journal commits, awaiting node
        implementations (a worker-thread hop for a synchronous one), and the rest (the
        interpreter, scheduling, event-loop wake-ups). Seconds, for one warm run."""
        from kailash_dsl.runtime import journal as J
        from kailash_dsl.runtime import nodes as N

        spent = {"commit": 0.0, "node": 0.0}
        real_commit, real_invoke = J.SqliteJournal.commit, N.invoke

        async def commit(self_, *a, **kw):
            t0 = time.perf_counter()
            try:
                return await real_commit(self_, *a, **kw)
            finally:
                spent["commit"] += time.perf_counter() - t0

        async def invoke(*a, **kw):
            t0 = time.perf_counter()
            try:
                return await real_invoke(*a, **kw)
            finally:
                spent["node"] += time.perf_counter() - t0

        loop = asyncio.new_event_loop()
        try:
            from kailash_dsl.runtime.nodes import executor

            loop.set_default_executor(executor())
            loop.run_until_complete(self.start(name, input_data))
            J.SqliteJournal.commit, N.invoke = commit, invoke
            try:
                total, _ = loop.run_until_complete(self.start(name, input_data))
            finally:
                J.SqliteJournal.commit, N.invoke = real_commit, real_invoke
        finally:
            loop.close()
        spent["total"] = total
        spent["rest"] = total - spent["commit"] - spent["node"]
        return spent

    def profile(self, name: str, input_data: dict) -> str:
        loop = asyncio.new_event_loop()
        prof = cProfile.Profile()
        try:
            loop.run_until_complete(self.start(name, input_data))
            prof.enable()
            loop.run_until_complete(self.start(name, input_data))
            prof.disable()
        finally:
            loop.close()
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf).strip_dirs()
        stats.sort_stats("cumulative").print_stats(18)
        stats.sort_stats("tottime").print_stats(12)
        return buf.getvalue()


def plain_asyncio(steps: int, repeat: int) -> tuple[float, float]:
    """The same function called `steps` times in a coroutine on a plain asyncio loop:
    seconds per call, directly and with one event-loop trip per call."""
    sys.path.insert(0, "")
    from vm_bench_nodes import inc

    async def work() -> int:
        v = 0
        for _ in range(steps):
            v = inc(v)
        return v

    async def work_yielding() -> int:
        v = 0
        for _ in range(steps):
            v = inc(v)
            await asyncio.sleep(0)  # one trip through the event loop per call
        return v

    out = []
    for fn in (work, work_yielding):
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            asyncio.run(fn())
            best = min(best, time.perf_counter() - t0)
        out.append(best / steps)
    return out[0], out[1]


def raw_sqlite(root: Path, steps: int, repeat: int = 1) -> float:
    """One aiosqlite INSERT + COMMIT per step (WAL, synchronous=NORMAL): seconds per step,
    best of ``repeat`` runs, each on a fresh database file in ``root``."""
    import aiosqlite

    async def work(path: Path) -> float:
        async with aiosqlite.connect(str(path)) as db:
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("CREATE TABLE steps (run_id TEXT, key TEXT, ok INTEGER, "
                             "value TEXT, attempts INTEGER, started_at REAL, finished_at REAL,"
                             " PRIMARY KEY (run_id, key)) WITHOUT ROWID")
            t0 = time.perf_counter()
            for i in range(steps):
                await db.execute("INSERT INTO steps VALUES (?,?,?,?,?,?,?)",
                                 ("raw", f"s{i}", 1, str(i), 1, time.time(), time.time()))
                await db.commit()
            return time.perf_counter() - t0

    best = float("inf")
    for _ in range(repeat):
        best = min(best, asyncio.run(work(root / f"raw-{uuid.uuid4().hex}.db")))
    return best / steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--profile", nargs="?", const="missed", choices=["missed", "all"])
    args = ap.parse_args(argv)
    n = args.steps

    with tempfile.TemporaryDirectory(prefix="kflow-vm-bench-") as tmp:
        root = Path(tmp)
        b = Bench(root, n, args.repeat)

        vm_pure, t_pure1, f_pure, out, _ = b.per_step("pure", "pure1", {"start": 0})
        assert out == n, out
        base_pure, base_yield = plain_asyncio(n, args.repeat)
        pure_overhead = vm_pure - base_pure

        vm_write, _, f_write, out, raw_write = b.per_step(
            "write", "write1", {"start": 0}, baseline=lambda: raw_sqlite(root, n))
        assert out == n, out
        vm_awrite, _, _, out, _ = b.per_step("awrite", "awrite1", {"start": 0})
        assert out == n, out

        t_fan, f_fan, out = b.timed("fan", {})
        assert out == sum(range(100)), out
        t_afan, _, _ = b.timed("afan", {})

        us = 1e6
        print(f"kflow VM benchmark ({n}-step chains, best of {args.repeat}, "
              f"Python {sys.version.split()[0]})")
        print()
        print("pure chain")
        print(f"  VM, per step                    {vm_pure * us:8.1f} µs")
        print(f"  plain asyncio loop, per call    {base_pure * us:8.1f} µs   "
              f"({base_yield * us:.1f} µs with an event-loop trip per call)")
        ok_pure = pure_overhead <= 20e-6
        print(f"  overhead per step               {pure_overhead * us:8.1f} µs   "
              f"(target ≤ 20 µs: {'met' if ok_pure else 'MISSED'})")
        print(f"  fixed cost of a run             {t_pure1 * 1000:8.1f} ms   "
              "(a one-step run: load, open journal, create run, commit)")
        print()
        print("write chain")
        print(f"  VM, per durable write step      {vm_write * us:8.1f} µs")
        print(f"  same, async implementation      {vm_awrite * us:8.1f} µs   "
              "(no worker-thread hop for the node)")
        print(f"  aiosqlite INSERT+COMMIT         {raw_write * us:8.1f} µs   "
              "(WAL, synchronous=NORMAL, same disk)")
        ratio = vm_write / raw_write
        ok_write = ratio <= 1.5
        print(f"  ratio                           {ratio:8.2f} ×    "
              f"(target ≤ 1.5×: {'met' if ok_write else 'MISSED'})")
        bd = b.breakdown("write", {"start": 0})
        print(f"  where a write step's time goes: journal commit "
              f"{bd['commit'] / n * us:.0f} µs, node call {bd['node'] / n * us:.0f} µs, "
              f"interpreter and scheduling {bd['rest'] / n * us:.0f} µs")
        print()
        print("group commits (journal transactions per run)")
        print(f"  pure chain    {f_pure:6d} for {n:5d} steps")
        print(f"  write chain   {f_write:6d} for {n:5d} steps")
        print(f"  100 reads     {f_fan:6d} for   100 steps")
        print()
        print("fan-out: 100 independent read steps sleeping 50 ms each")
        ok_fan = t_fan <= 0.150
        print(f"  sync (worker threads)           {t_fan * 1000:8.1f} ms   "
              f"(target ≤ 150 ms: {'met' if ok_fan else 'MISSED'})")
        print(f"  async                           {t_afan * 1000:8.1f} ms")

        missed = {"pure": not ok_pure, "write": not ok_write, "fan": not ok_fan}
        if args.profile:
            for name, miss in missed.items():
                if miss or args.profile == "all":
                    data = {"pure": {"start": 0}, "write": {"start": 0}, "fan": {}}[name]
                    print()
                    print(f"--- cProfile: {name} " + "-" * 60)
                    print(b.profile(name, data))
        elif any(missed.values()):
            print()
            print("a target was missed; run with --profile for where the time goes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
