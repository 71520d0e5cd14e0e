"""What tracing (webhookhub.tracing) costs the engine per delivery and per publish:
the hooks with tracing off (what every deployment without OTEL_* pays), and with it on
(an SDK TracerProvider, a batch processor, an exporter that drops the spans: the CPU
in the process, not the collector's network).

    .venv/bin/python bench/tracing_cost.py

No database: the hooks take the engine's objects, stood in for by plain ones.
"""

import os
import sys
import timeit
from types import SimpleNamespace

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from deliveries.transport import AttemptResult, OutboundRequest
from webhookhub import tracing

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Dropping(SpanExporter):
    def export(self, spans):
        return SpanExportResult.SUCCESS


def objects(*, traceparent: str, send_traceparent: bool):
    endpoint = SimpleNamespace(public_id="ep_x", send_traceparent=send_traceparent)
    event = SimpleNamespace(public_id="evt_x", traceparent=traceparent, tracestate="")
    delivery = SimpleNamespace(
        public_id="dlv_x", endpoint=endpoint, event=event, attempt_count=0, next_trigger="auto"
    )
    request = OutboundRequest(url="https://example.com/hook", body=b"{}", headers={"a": "b"})
    result = AttemptResult(status_code=200)
    return endpoint, delivery, request, result


def per_delivery(endpoint, delivery, request, result) -> None:
    """Every hook one delivery passes: claim (a batch of one), attempt, record, log."""
    started = tracing.clock()
    tracing.claimed(endpoint, [delivery], started)
    span, _request = tracing.attempt_started(delivery, request)
    tracing.attempt_ended(span, result)
    outcome = SimpleNamespace(span=span)
    tracing.recorded([outcome], tracing.clock())
    tracing.log_fields(span)


@tracing.traced(tracing.PUBLISH, before=lambda *a: {"webhookhub.event.type": "x"})
def publish_stand_in():
    tracing.event_trace_fields()
    trace = tracing.current()
    tracing.handed_off(trace, tracing.clock(), endpoints=1, tasks=1)


def measure(label: str, function, *args, number: int) -> float:
    best = min(timeit.repeat(lambda: function(*args), number=number, repeat=5))
    micro = best / number * 1e6
    print(f"{label:<58} {micro:8.2f} µs")
    return micro


def main() -> None:
    n = 100_000
    print("tracing off")
    for send in (False, True):
        args = objects(traceparent=TRACEPARENT, send_traceparent=send)
        measure(f"  hooks per delivery (send_traceparent={send})", per_delivery, *args, number=n)
    measure("  hooks per publish", publish_stand_in, number=n)
    measure("  log_fields() per JSON log line", tracing.log_fields, number=n)

    provider = TracerProvider()
    # A queue that never fills (a full one logs a warning per dropped span).
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=1_000_000))
    tracing.install(provider)
    print("tracing on (batch processor, spans dropped by the exporter)")
    n = 10_000
    for send in (False, True):
        args = objects(traceparent=TRACEPARENT, send_traceparent=send)
        measure(f"  hooks per delivery (send_traceparent={send})", per_delivery, *args, number=n)
    measure("  hooks per publish", publish_stand_in, number=n)
    tracing.install(None)
    provider.shutdown()


if __name__ == "__main__":
    main()
