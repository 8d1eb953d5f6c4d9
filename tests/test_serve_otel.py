"""OpenTelemetry: a span per run, and one per journaled step under it (real step times)."""

from __future__ import annotations

import asyncio

import pytest

from kailash_dsl.serve.testing import write_files

pytest.importorskip("opentelemetry.sdk")

FLOW = '''\
## Two steps.
module serve.traced

## Add one.
@impl("traced_nodes:inc")
@effect(write, resource: "n")
node Inc(x: int) -> int

## Twice.
workflow Twice(x: int) -> int {
  let a = Inc(x: x)
  let b = Inc(x: a)
  return b
}

## Fails.
workflow Bad() -> int {
  fail "no"
}
'''


def test_spans_per_run_and_step(tmp_path):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from kailash_dsl.serve.engine import Engine
    from kailash_dsl.serve.registry import Registry, check_input

    write_files(tmp_path, {"traced.kflow": FLOW, "traced_nodes.py": "def inc(x):\n"
                                                                    "    return x + 1\n"})
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    async def go():
        reg = Registry.load([str(tmp_path / "traced.kflow")])
        eng = Engine(reg, tmp_path / "runs.db", tracer=provider.get_tracer("t"))
        await eng.open()
        try:
            twice, bad = reg.by_qualname["serve.traced.Twice"], reg.by_qualname["serve.traced.Bad"]
            ok = await eng.start(twice, check_input(twice.rwf, {"x": 1}), {"x": 1})
            failed = await eng.start(bad, check_input(bad.rwf, {}), {})
            return ok, failed
        finally:
            await eng.close()

    ok, failed = asyncio.run(go())
    assert ok["output"] == 3 and failed["status"] == "failed"
    spans = exporter.get_finished_spans()
    runs = [s for s in spans if s.name.startswith("kflow.run")]
    steps = [s for s in spans if s.name.startswith("kflow.step")]
    assert [s.name for s in runs] == ["kflow.run Twice", "kflow.run Bad"]
    assert runs[0].attributes["kflow.run_id"] == ok["run_id"]
    assert runs[0].attributes["kflow.status"] == "completed"
    assert runs[1].status.status_code.name == "ERROR"
    assert sorted(s.attributes["kflow.step"] for s in steps) == ["a", "b"]
    for s in steps:
        assert s.parent.span_id == runs[0].context.span_id
        assert runs[0].start_time <= s.start_time <= s.end_time <= runs[0].end_time
