"""Tracing with OpenTelemetry: setup, and the spans of the delivery path.

Off unless an exporter is configured by the standard variables: `OTEL_TRACES_EXPORTER`
(`otlp`, `console`; `none` turns it off), or an OTLP endpoint
(`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`); `OTEL_SDK_DISABLED`
wins. The SDK reads the rest itself (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, `OTEL_EXPORTER_OTLP_*`). Off, every hook below
returns at once: no span object is built, nothing is queried.

The spans (docs/operations.md#tracing): Django's request span (the Django
instrumentation), `webhookhub.publish`, `webhookhub.handoff`, then in the worker
`webhookhub.claim`, `webhookhub.attempt` (one per HTTP request) and `webhookhub.record`.
`publish()` stores the W3C trace context of its span on the event (`traceparent`,
`tracestate`), and every attempt of every delivery of that event — in whatever process,
retries and replays too — is a child of it: one trace from the API request to the
attempts. Claims and records are batches of many events: each links to the spans it
served, and is a child of them when they are all of one trace.

This module imports no app: the engine hands it its objects (duck-typed) and values.
No hook raises: a tracing failure is logged, the delivery goes on.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

logger = logging.getLogger(__name__)

TRACER_NAME = "webhookhub"
DEFAULT_SERVICE_NAME = "webhookhub"
MAX_LINKS = 100  # links per batch span (the SDK's own limit is 128)
FLUSH_AT_EXIT_MILLIS = 5000

PUBLISH = "webhookhub.publish"
HANDOFF = "webhookhub.handoff"
CLAIM = "webhookhub.claim"
ATTEMPT = "webhookhub.attempt"
RECORD = "webhookhub.record"

_W3C = TraceContextTextMapPropagator()
_tracer: trace.Tracer | None = None  # None: tracing is off in this process
_provider = None  # the SDK TracerProvider this module set up (flushed at exit)


# --- setup ------------------------------------------------------------------------------


def exporters_configured(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The span exporters the standard variables ask for (empty: tracing off)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n]
    if names:
        return [] if "none" in names else list(dict.fromkeys(names))
    if environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    ):
        return ["otlp"]
    return []


def setup(environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on in this process if the environment configures an exporter: a
    TracerProvider with a batch processor per exporter, Django's request spans. Called
    once per process (`WebhookhubAdminConfig.ready`); returns whether tracing is on."""
    if _tracer is not None:
        return True
    names = exporters_configured(environ)
    if not names:
        return False
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    exporters = [e for e in (_exporter(name, environ) for name in names) if e is not None]
    if not exporters:
        return False  # each was refused with a log line saying why
    provider = TracerProvider(resource=resource)  # samples per OTEL_TRACES_SAMPLER
    for exporter in exporters:
        # A batch processor's thread is started again in a forked child (the SDK
        # registers that), so django-q2's workers inherit a working one;
        # `worker_started` makes them flush it when they exit.
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    install(provider)
    _instrument_django(provider)
    return True


def _exporter(name: str, environ: Mapping[str, str]):
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        protocol = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "http/protobuf"
        ).strip()
        if protocol == "http/protobuf":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            return OTLPSpanExporter()
        if protocol == "grpc":
            try:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter as GrpcExporter,
                )
            except ImportError:
                logger.error(
                    "OTLP over gRPC needs opentelemetry-exporter-otlp-proto-grpc, which is "
                    "not installed: use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
                )
                return None
            return GrpcExporter()
        logger.error("OTLP protocol %r is not supported: use http/protobuf", protocol)
        return None
    logger.error("unknown OTEL_TRACES_EXPORTER %r: use otlp, console or none", name)
    return None


def _instrument_django(provider) -> None:
    """Django's request spans (opentelemetry-instrumentation-django: the incoming
    `traceparent` is honoured, `OTEL_PYTHON_DJANGO_EXCLUDED_URLS` applies)."""
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)


def install(provider) -> None:
    """Trace with this TracerProvider in this process (None: off again). `setup` calls
    it; tests pass an SDK provider with an in-memory exporter."""
    global _tracer, _provider
    _provider = provider
    _tracer = None if provider is None else provider.get_tracer(TRACER_NAME)


def enabled() -> bool:
    return _tracer is not None


def flush(timeout_millis: int = FLUSH_AT_EXIT_MILLIS) -> None:
    """Export what is still queued (a process about to exit)."""
    if _provider is not None:
        try:
            _provider.force_flush(timeout_millis)
        except Exception:  # pragma: no cover - an exporter's failure is not ours
            logger.exception("could not flush spans")


def worker_started() -> None:
    """In a django-q2 worker (just forked): flush the spans when it exits. A forked
    process ends with os._exit, past `atexit`; multiprocessing runs its finalizers."""
    if _provider is not None:
        from multiprocessing import util

        util.Finalize(None, flush, exitpriority=10)


def _never_raises(hook):
    """Tracing is never a reason for a delivery to fail: log, go on."""

    @functools.wraps(hook)
    def guarded(*args, **kwargs):
        try:
            return hook(*args, **kwargs)
        except Exception:
            logger.exception("tracing: %s failed", hook.__name__)
            return None

    return guarded


# --- publish ----------------------------------------------------------------------------


def traced(
    name: str,
    *,
    before: Callable[..., dict] | None = None,
    after: Callable[[object], dict] | None = None,
):
    """Run the decorated function in a span `name` (the current one while it runs),
    with attributes from its arguments (`before(*args, **kwargs)`) and its result
    (`after(result)`). Off: a plain call."""

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if _tracer is None:
                return function(*args, **kwargs)
            attributes = before(*args, **kwargs) if before else None
            with _tracer.start_as_current_span(name, attributes=attributes) as span:
                result = function(*args, **kwargs)
                if after is not None and span.is_recording():
                    span.set_attributes(after(result))
                return result

        return wrapper

    return decorate


def event_trace_fields() -> dict[str, str]:
    """The current trace context, W3C-encoded, for the event being published:
    `{"traceparent": …, "tracestate": …}`, or nothing when no span is active (tracing
    off, and no tracing of the caller's own)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return {"traceparent": carrier["traceparent"], "tracestate": carrier.get("tracestate", "")}


def event_context(event) -> otel_context.Context | None:
    """The context stored on an event at publish time (None if it has none); kept on
    the event object, so the deliveries of one event extract it once."""
    cached = getattr(event, "_trace_context", False)
    if cached is not False:
        return cached
    found = None
    if event.traceparent:
        carrier = {"traceparent": event.traceparent}
        if event.tracestate:
            carrier["tracestate"] = event.tracestate
        found = _W3C.extract(carrier)
        if not trace.get_current_span(found).get_span_context().is_valid:
            found = None
    event._trace_context = found
    return found


# --- the hand-off, claims and records: spans written once the work is done ----------


def current() -> otel_context.Context | None:
    """The current context, if tracing is on (a hand-off keeps its publish's)."""
    return otel_context.get_current() if _tracer is not None else None


def clock() -> int:
    """When a batch step started (ns), for the span written after it; 0 when off."""
    return time.time_ns() if _tracer is not None else 0


def handed_off(parent, started: int, *, endpoints: int, tasks: int) -> None:
    """`webhookhub.handoff`: the drain tasks queued when a publish's transaction
    committed, a child of that publish."""
    if _tracer is None or parent is None:
        return
    _handoff_span(parent, started, endpoints, tasks)


@_never_raises
def _handoff_span(parent, started: int, endpoints: int, tasks: int) -> None:
    span = _tracer.start_span(
        HANDOFF,
        context=parent,
        kind=SpanKind.PRODUCER,
        start_time=started,
        attributes={"webhookhub.endpoints": endpoints, "webhookhub.tasks": tasks},
    )
    span.end()


def claimed(endpoint, deliveries: list, started: int) -> None:
    """`webhookhub.claim`: deliveries of one endpoint taken for sending."""
    if _tracer is None or not deliveries:
        return
    _claim_span(endpoint, deliveries, started)


@_never_raises
def _claim_span(endpoint, deliveries: list, started: int) -> None:
    contexts = [_span_context(event_context(d.event)) for d in deliveries]
    _batch_span(
        CLAIM,
        started,
        contexts,
        {"webhookhub.endpoint.id": endpoint.public_id, "webhookhub.deliveries": len(deliveries)},
    )


def recorded(outcomes: list, started: int, *, failed: bool = False) -> None:
    """`webhookhub.record`: one wave of answers written (attempt rows, next states)."""
    if _tracer is None or not outcomes:
        return
    contexts = [o.span.get_span_context() if o.span is not None else None for o in outcomes]
    _batch_span(RECORD, started, contexts, {"webhookhub.attempts": len(outcomes)}, failed=failed)


def _span_context(ctx) -> trace.SpanContext | None:
    return None if ctx is None else trace.get_current_span(ctx).get_span_context()


@_never_raises
def _batch_span(name: str, started: int, served: list, attributes: dict, *, failed=False):
    """A span for work done for many spans (`served`): their child if they are all of
    one trace, else a root; linked to each of them (up to MAX_LINKS)."""
    distinct = list({(c.trace_id, c.span_id): c for c in served if c is not None}.values())
    one_trace = bool(distinct) and len({c.trace_id for c in distinct}) == 1
    parent = (
        trace.set_span_in_context(trace.NonRecordingSpan(distinct[0]))
        if one_trace
        else otel_context.Context()
    )
    alone = one_trace and len(distinct) == 1  # its parent says it all
    links = [] if alone else [Link(c) for c in distinct[:MAX_LINKS]]
    span = _tracer.start_span(
        name, context=parent, start_time=started, attributes=attributes, links=links
    )
    if failed:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


# --- attempts ---------------------------------------------------------------------------


def attempt_started(delivery, request):
    """`(span, request)`: the `webhookhub.attempt` span of this delivery's next attempt
    (None when off), a child of its event's publish; and the request to send — with a
    W3C `traceparent` header (the attempt's) if its endpoint asks for one
    (`send_traceparent`)."""
    if _tracer is None:
        if delivery.endpoint.send_traceparent and delivery.event.traceparent:
            # Not tracing here, but the publish was: pass on the publish's context.
            request = _with_headers(request, lambda: event_context(delivery.event)) or request
        return None, request
    return _attempt_span(delivery, request) or (None, request)


@_never_raises
def _attempt_span(delivery, request):
    endpoint = delivery.endpoint
    host = urlsplit(request.url)
    attributes = {
        "webhookhub.endpoint.id": endpoint.public_id,
        "webhookhub.delivery.id": delivery.public_id,
        "webhookhub.event.id": delivery.event.public_id,
        "webhookhub.attempt.number": delivery.attempt_count + 1,
        "webhookhub.attempt.trigger": str(delivery.next_trigger),
        "http.request.method": "POST",
        "server.address": host.hostname or "",
    }
    if (port := _port(host)) is not None:
        attributes["server.port"] = port
    parent = event_context(delivery.event) or otel_context.Context()
    span = _tracer.start_span(ATTEMPT, context=parent, kind=SpanKind.CLIENT, attributes=attributes)
    if endpoint.send_traceparent:
        request = _with_headers(request, lambda: trace.set_span_in_context(span)) or request
    return span, request


def _port(parts) -> int | None:
    try:
        return parts.port
    except ValueError:
        return None


def attempt_ended(span, result) -> None:
    """End the attempt's span with what came back."""
    if span is not None:
        _end_attempt(span, result)


@_never_raises
def _end_attempt(span, result) -> None:
    if result.status_code is not None:
        span.set_attribute("http.response.status_code", result.status_code)
    if result.error_kind:
        span.set_attribute("webhookhub.error.kind", result.error_kind)
        span.set_attribute("error.type", str(result.status_code or result.error_kind))
        span.set_status(Status(StatusCode.ERROR, result.error_kind))
    span.end()


@_never_raises
def _with_headers(request, context_of):
    """The request with the W3C headers of `context_of()` added."""
    ctx = context_of()
    if ctx is None:
        return request
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, context=ctx)
    if not carrier:
        return request
    return replace(request, headers={**request.headers, **carrier})


# --- logs -------------------------------------------------------------------------------


def log_fields(span=None) -> dict[str, str]:
    """`trace_id` and `span_id` for a log line: of `span`, or of the current span when
    it is recording; nothing otherwise."""
    if span is None:
        span = trace.get_current_span()
        if not span.is_recording():
            return {}
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return {}
    return {
        "trace_id": trace.format_trace_id(ctx.trace_id),
        "span_id": trace.format_span_id(ctx.span_id),
    }
