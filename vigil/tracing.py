"""OpenTelemetry traces: one per image, from the watcher to the projector.

The envelope's `trace_id` is a W3C trace id. The watcher starts the trace when it reports a
file; every message we produce carries `traceparent` in its Kafka headers (the span that
produced it); each stage's handling of a message (`consuming`), each model call and each
projected record is a span of the trace it belongs to. The API's requests are spans by
FastAPI's own telemetry, which continues a caller's `traceparent`; what a request publishes
(a requeue, a flush) continues the request's trace. A message
without the header (produced before traces existed, or by a client that does not set it)
still joins its envelope's trace, under a parent that is not recorded.

Exporting is set only by the standard variables: `OTEL_TRACES_EXPORTER` (`otlp`, `console`,
or `none`, the default: nothing leaves the process), then `OTEL_EXPORTER_OTLP_*`,
`OTEL_SERVICE_NAME`, `OTEL_BSP_*` as the SDK reads them. The ids are real either way, so logs
and headers name the same trace whether or not spans are exported.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
# Kafka headers as confluent-kafka and Faust take and give them.
Headers = Sequence[tuple[str, bytes | str | None]]

_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("vigil")
_exporting = False


class UnknownExporter(ValueError):
    """OTEL_TRACES_EXPORTER names an exporter Vigil does not ship."""


def _exporter(name: str) -> SpanExporter:
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    raise UnknownExporter(f"OTEL_TRACES_EXPORTER: unknown exporter {name!r} (otlp, console, none)")


def configure(service: str) -> None:
    """Make this process's spans real, named `service` (unless OTEL_SERVICE_NAME says
    otherwise), and export them as OTEL_TRACES_EXPORTER says. Once per process: a second call
    changes nothing."""
    global _exporting
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    names = [
        name.strip()
        for name in os.environ.get("OTEL_TRACES_EXPORTER", "none").split(",")
        if name.strip() and name.strip() != "none"
    ]
    exporters = [_exporter(name) for name in names]
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _exporting = bool(exporters)


def exporting() -> bool:
    """Whether spans leave this process: work done only for a span (one per projected record)
    is skipped when they do not."""
    return _exporting


def tracer() -> trace.Tracer:
    return _tracer


def trace_id_of(span: Span) -> str | None:
    """The span's trace id as the envelope writes it (32 hex digits); None if not recorded."""
    context = span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _header(headers: Headers | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("latin-1") if isinstance(value, bytes) else value
    return None


def parent_of(headers: Headers | None, trace_id: str | None) -> Context | None:
    """The context a message's span continues: its `traceparent` header, or else its
    envelope's trace id under an unrecorded parent; None (a new trace) when it has neither."""
    traceparent = _header(headers, TRACEPARENT)
    if traceparent is not None:
        context = _propagator.extract({TRACEPARENT: traceparent})
        if trace.get_current_span(context).get_span_context().is_valid:
            return context
    try:
        number = int(trace_id or "", 16)
    except ValueError:
        return None
    if not 0 < number < 2**128:
        return None
    parent = SpanContext(
        trace_id=number,
        span_id=random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def traceparent() -> str | None:
    """The current span as a `traceparent` value; None outside a recorded span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get(TRACEPARENT)


def headers_for(value: str | None) -> list[tuple[str, bytes]] | None:
    """Kafka headers carrying `traceparent` = `value` (None: no headers)."""
    return [(TRACEPARENT, value.encode())] if value else None


@contextmanager
def consuming(
    name: str, headers: Headers | None, trace_id: str | None, attributes: Mapping[str, str]
) -> Iterator[Span]:
    """The span of handling one consumed message, current inside."""
    with _tracer.start_as_current_span(
        name,
        context=parent_of(headers, trace_id),
        kind=SpanKind.CONSUMER,
        attributes=dict(attributes),
    ) as span:
        yield span


def record_span(
    name: str,
    headers: Headers | None,
    trace_id: str | None,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, str],
) -> None:
    """A span of work already done (from `start_ns` to `end_ns`, time.time_ns), in the trace
    of the message it was done for."""
    span = _tracer.start_span(
        name,
        context=parent_of(headers, trace_id),
        kind=SpanKind.CONSUMER,
        attributes=dict(attributes),
        start_time=start_ns,
    )
    span.end(end_time=end_ns)
