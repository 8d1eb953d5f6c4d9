"""OpenTelemetry spans per run and per step, when the ``otel`` extra is installed.

Spans are made only when a real tracer provider is configured — by the application (an
SDK ``TracerProvider`` set before the server starts, e.g. under ``opentelemetry-instrument``)
or, for ``kflow serve`` itself, by ``OTEL_TRACES_EXPORTER=console`` or ``otlp`` (the latter
needs ``opentelemetry-exporter-otlp``). Without one, nothing is imported or recorded.

- ``kflow.run <Workflow>`` for each run driven by the server (a start or a resume), with
  ``kflow.run_id``, ``kflow.workflow``, ``kflow.channel`` and, at its end,
  ``kflow.status``; an error status when the run failed;
- ``kflow.step <key>`` under it for each journaled step, with its real start and end
  times (taken from the journal's record of the step), ``kflow.step``, ``kflow.ok`` and
  ``kflow.attempts``.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("kflow.serve")


def tracer():
    """The tracer to use, or None when tracing is off."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if type(provider).__name__ in ("ProxyTracerProvider", "NoOpTracerProvider"):
        provider = _configure_from_env()
        if provider is None:
            return None
    from .. import __version__

    return provider.get_tracer("kailash_dsl.serve", __version__)


def _configure_from_env():
    which = (os.environ.get("OTEL_TRACES_EXPORTER") or "").strip().lower()
    if which not in ("console", "otlp"):
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        log.warning("OTEL_TRACES_EXPORTER is set but opentelemetry-sdk is not installed: "
                    "pip install 'kailash-dsl[otel]'")
        return None
    if which == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter,
            )
        except ImportError:
            log.warning("OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp")
            return None
        exporter = OTLPSpanExporter()
    else:
        import sys

        exporter = ConsoleSpanExporter(out=sys.stderr)
    service = os.environ.get("OTEL_SERVICE_NAME", "kflow")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return trace.get_tracer_provider()


class Spans:
    """The open run spans of an engine, and the step spans recorded under them."""

    def __init__(self, tracer) -> None:
        from opentelemetry import trace

        self._trace = trace
        self.tracer = tracer
        self.runs: dict[str, object] = {}

    def start_run(self, run_id: str, workflow: str, channel: str):
        name = workflow.rsplit(".", 1)[-1]
        span = self.tracer.start_span(f"kflow.run {name}", attributes={
            "kflow.run_id": run_id, "kflow.workflow": workflow, "kflow.channel": channel})
        self.runs[run_id] = span
        return span

    def end_run(self, run_id: str, result: dict | None) -> None:
        span = self.runs.pop(run_id, None)
        if span is None:
            return
        if result is not None:
            span.set_attribute("kflow.status", result.get("status", ""))
            if result.get("status") == "failed":
                from opentelemetry.trace import Status, StatusCode

                err = result.get("error") or {}
                span.set_status(Status(StatusCode.ERROR,
                                       f"{err.get('kind')}: {err.get('message')}"))
        span.end()

    def steps(self, run_id: str, steps) -> None:
        parent = self.runs.get(run_id)
        if parent is None:
            return
        ctx = self._trace.set_span_in_context(parent)
        for s in steps:
            if not s.started_at or not s.finished_at:
                continue
            span = self.tracer.start_span(
                f"kflow.step {s.key}", context=ctx, start_time=int(s.started_at * 1e9),
                attributes={"kflow.step": s.key, "kflow.ok": bool(s.ok),
                            "kflow.attempts": int(s.attempts or 1)})
            if not s.ok:
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR))
            span.end(end_time=int(s.finished_at * 1e9))
