"""OpenTelemetry traces of runs (the ``otel`` extra): a span per run and per step attempt.

Enabled when the extra is installed and the environment configures
OpenTelemetry (any ``OTEL_*`` variable, e.g. ``OTEL_EXPORTER_OTLP_ENDPOINT``);
spans go out through the standard OTLP/HTTP exporter (or the console one with
``OTEL_TRACES_EXPORTER=console``). A top-level run's span is parented on the
W3C ``traceparent`` its run carries (the signal that caused it), a composed
run's on its parent run; each step attempt is a span under its run, and a
rollback is a span under the run with one span per undo under it, in the order
they ran.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("bbflow.serve")

EXTRA_HINT = "OpenTelemetry is configured (OTEL_*) but not installed: pip install 'bbflow[otel]'"


def tracer_from_env(environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """A ``Tracing`` exporting as the environment says, or ``None`` when OpenTelemetry is not configured."""
    if not any(key.startswith("OTEL_") for key in environ) or environ.get("OTEL_SDK_DISABLED") == "true":
        return None
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    except ImportError:
        log.warning(EXTRA_HINT)
        return None
    exporter: SpanExporter
    if environ.get("OTEL_TRACES_EXPORTER", "otlp") == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            log.warning(EXTRA_HINT)
            return None
        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME", "bbflow")}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)


class Tracing:
    """An event observer turning runs, steps and undos into spans of ``provider``."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self.tracer = provider.get_tracer("bbflow")
        self._propagator = TraceContextTextMapPropagator()
        self._runs: dict[str, Any] = {}  # run -> its span
        self._rollbacks: dict[str, Any] = {}  # run -> its rollback span
        self._open: dict[tuple[Any, ...], Any] = {}  # (kind, run, step, index) -> span

    def __call__(self, event: dict[str, Any]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        name = event.get("event", "")
        run = event.get("run")
        if run is None:
            return
        if name == "run.start":
            parent = self._runs.get(event.get("parent") or "")
            if parent is not None:
                context = trace.set_span_in_context(parent)
            else:
                carrier = {"traceparent": event["traceparent"]} if event.get("traceparent") else {}
                context = self._propagator.extract(carrier)
            kind = "command" if event.get("command") else "reactor"  # an agent's command is a run of one step
            self._runs[run] = self.tracer.start_span(f"run {event.get(kind)}", context=context,
                                                     attributes={"bbflow.run": run, f"bbflow.{kind}": str(event.get(kind))})
            return
        span = self._runs.get(run)
        if span is None:
            return
        key = (name.split(".", 1)[0], run, event.get("step"), tuple(event.get("index") or ()))
        if name == "step.start":
            self._open[key] = self.tracer.start_span(
                f"step {event.get('step')}", context=trace.set_span_in_context(span),
                attributes={"bbflow.step": str(event.get("step")), "bbflow.attempt": int(event.get("attempt", 1))})
        elif name == "undo.start":
            rollback = self._rollbacks.get(run)
            if rollback is None:
                rollback = self._rollbacks[run] = self.tracer.start_span("rollback", context=trace.set_span_in_context(span))
            self._open[key] = self.tracer.start_span(f"undo {event.get('step')}",
                                                     context=trace.set_span_in_context(rollback),
                                                     attributes={"bbflow.step": str(event.get("step"))})
        elif name in ("step.ok", "step.error", "undo.ok", "undo.error"):
            opened = self._open.pop(key, None)
            if opened is not None:
                if name.endswith("error"):
                    opened.set_status(Status(StatusCode.ERROR, _message(event)))
                opened.end()
        elif name in ("run.ok", "run.failed", "run.halted"):
            rollback = self._rollbacks.pop(run, None)
            if rollback is not None:
                rollback.end()
            del self._runs[run]
            if name != "run.ok":
                span.set_status(Status(StatusCode.ERROR, _message(event)))
            span.set_attribute("bbflow.outcome", name.split(".", 1)[1])
            span.end()

    def close(self) -> None:
        """Flush and stop the exporter."""
        self.provider.shutdown()


def _message(event: dict[str, Any]) -> str:
    error = event.get("error")
    return str(error.get("message", "")) if isinstance(error, dict) else str(error or "")
