"""@circuit_breaker and @bulkhead (§9): their state is shared by all runs in one process.

Runs go through ``kailash_dsl.runtime.api.start`` in this process, each on its own
event loop, as a server would drive them.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from kailash_dsl.runtime import api
from kailash_dsl.runtime.nodes import executor

NODES = """\
import asyncio

inflight = 0
peak = 0
calls = 0


async def work(tag):
    global inflight, peak
    inflight += 1
    peak = max(peak, inflight)
    try:
        await asyncio.sleep(0.03)
    finally:
        inflight -= 1
    return tag


def flaky(tag):
    global calls
    calls += 1
    raise RuntimeError("service down")
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    name = f"res_nodes_{uuid.uuid4().hex[:8]}"  # fresh module state for each test
    (tmp_path / f"{name}.py").write_text(NODES)
    monkeypatch.setenv("KFLOW_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path, name


def start(path, db):
    loop = asyncio.new_event_loop()
    try:
        loop.set_default_executor(executor())
        return loop.run_until_complete(api.start(str(path), None, {}, run_id=None, db=db,
                                                 block_for=10.0))
    finally:
        loop.close()


def test_circuit_breaker_opens_after_consecutive_failures_across_runs(project):
    tmp, mod = project
    path = tmp / f"cb_{mod}.kflow"  # breakers are keyed by node qualname, per process
    path.write_text(f"""\
@impl("{mod}:flaky")
@effect(read)
@retry(attempts: 1)
@circuit_breaker(failures: 2, reset: 60s)
node Flaky(tag: str) -> str

workflow C() -> str {{
  try {{
    let a = Flaky(tag: "a")
    return a
  }} catch as e {{
    return e.kind
  }}
}}
""")
    kinds = [start(path, tmp / f"r{i}.db").result["output"] for i in range(4)]
    assert kinds == ["StepFailed", "StepFailed", "CircuitOpen", "CircuitOpen"]
    import importlib

    assert importlib.import_module(mod).calls == 2  # an open circuit does not call


def test_bulkhead_limits_concurrent_calls_across_runs(project):
    tmp, mod = project
    path = tmp / f"bh_{mod}.kflow"
    path.write_text(f"""\
@impl("{mod}:work")
@effect(read)
@bulkhead(limit: 2)
node Work(tag: str) -> str

workflow B() -> list[str] {{
  let a = Work(tag: "a")
  let b = Work(tag: "b")
  let c = Work(tag: "c")
  let d = Work(tag: "d")
  return [a, b, c, d]
}}
""")
    for i in range(2):  # a second run, on a second event loop, shares the bulkhead
        out = start(path, tmp / f"r{i}.db")
        assert out.result["output"] == ["a", "b", "c", "d"], out.result
    import importlib

    assert importlib.import_module(mod).peak == 2
