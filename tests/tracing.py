"""Spans in the test process: the SDK's in-memory exporter behind webhookhub.tracing
and Django's request spans, as `setup()` wires them when an exporter is configured."""

import pytest
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from webhookhub import tracing


class Spans:
    def __init__(self, exporter: InMemorySpanExporter, provider: TracerProvider):
        self.exporter, self.provider = exporter, provider

    def all(self) -> list:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list:
        return [s for s in self.all() if s.name == name]

    def one(self, name: str):
        (span,) = self.named(name)
        return span


@pytest.fixture
def spans():
    """Tracing on in this process for one test; the finished spans."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    instrumentor = DjangoInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield Spans(exporter, provider)
    finally:
        instrumentor.uninstrument()
        tracing.install(None)


def hex_trace(span) -> str:
    return format(span.context.trace_id, "032x")


def hex_span(span) -> str:
    return format(span.context.span_id, "016x")
