"""End to end: one trace from the API request (this process, in-memory exporter) to the
attempts a real qcluster makes (exported over OTLP/HTTP to a real collector stand-in
here), the opt-in `traceparent` header, and the spans a worker still holds exported
when the cluster is stopped."""

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.trace import SpanKind

from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import ApiToken
from events.services import publish
from tests.api.conftest import client_for, make_token
from tests.e2e.conftest import wait_until
from tests.factories import make_endpoint
from webhookhub import tracing

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("e2e"),
]


@dataclass
class ExportedSpan:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict
    service: str


class Collector:
    """An OTLP/HTTP traces receiver: decodes each ExportTraceServiceRequest."""

    def __init__(self) -> None:
        self.spans: list[ExportedSpan] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                collector.receive(self.path, self.headers.get("Content-Type", ""), body)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def receive(self, path: str, content_type: str, body: bytes) -> None:
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ExportedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            service=resource.get("service.name", ""),
                        )
                    )

    def named(self, name: str) -> list[ExportedSpan]:
        return [s for s in list(self.spans) if s.name == name]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(any_value):
    return getattr(any_value, any_value.WhichOneof("value"))


@pytest.fixture
def collector():
    found = Collector()
    yield found
    found.close()


def otel_env(collector: Collector, *, delay_ms: int) -> dict:
    return {
        "TEST_OTEL_TRACES_EXPORTER": "otlp",  # test_settings turns tracing off otherwise
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.url,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": str(delay_ms),
        "OTEL_SERVICE_NAME": "webhookhub-worker",
    }


def test_one_trace_from_the_api_request_to_the_clusters_attempts(
    spans, event_types, receiver, collector, start_cluster
):
    opted = make_endpoint(url=receiver.url_for("/opted"), send_traceparent=True)
    plain = make_endpoint(url=receiver.url_for("/plain"))
    start_cluster(extra_env=otel_env(collector, delay_ms=100))
    api = client_for(make_token(ApiToken.Role.PUBLISHER))
    response = api.post("/api/v1/events/", {"type": "order.paid", "data": {"order": 7}})
    assert response.status_code == 201, response.content
    (request_span,) = [s for s in spans.all() if s.kind == SpanKind.SERVER]
    trace_id = format(request_span.context.trace_id, "032x")
    publish_span = spans.one(tracing.PUBLISH)

    received = {r.path: r for r in receiver.wait_for(2, timeout=30)}
    attempts = wait_until(
        lambda: len(collector.named(tracing.ATTEMPT)) == 2 and collector.named(tracing.ATTEMPT),
        timeout=20,
        message="both attempt spans exported by the cluster",
    )
    by_endpoint = {a.attributes["webhookhub.endpoint.id"]: a for a in attempts}
    assert set(by_endpoint) == {opted.public_id, plain.public_id}
    for attempt in attempts:
        assert attempt.service == "webhookhub-worker"
        assert attempt.trace_id == trace_id  # the API request's trace, in another process
        assert attempt.parent_span_id == format(publish_span.context.span_id, "016x")
        assert attempt.attributes["webhookhub.event.id"] == response.json()["id"]
        assert attempt.attributes["webhookhub.attempt.number"] == 1
        assert attempt.attributes["http.response.status_code"] == 200
    # Opted in: the receiver got the attempt's own context. Not opted in: nothing.
    header = received["/opted"].headers["traceparent"]
    version, header_trace, parent_id, _flags = header.split("-")
    assert (version, header_trace) == ("00", trace_id)
    assert parent_id == by_endpoint[opted.public_id].span_id
    assert "traceparent" not in received["/plain"].headers
    wait_until(
        lambda: collector.named(tracing.RECORD) and collector.named(tracing.CLAIM),
        timeout=20,
        message="claim and record spans exported",
    )
    assert {s.trace_id for s in collector.named(tracing.CLAIM)} == {trace_id}


def test_a_stopping_cluster_exports_the_spans_it_holds(
    event_types, receiver, collector, start_cluster
):
    """A minute between exports: what arrives came from the worker's exit."""
    make_endpoint(url=receiver.url_for())
    cluster = start_cluster(extra_env=otel_env(collector, delay_ms=60_000))
    event = publish("order.paid", {"n": 1})
    receiver.wait_for(1, timeout=30)
    wait_until(
        lambda: Delivery.objects.filter(event=event, status=DeliveryStatus.SUCCEEDED).exists(),
        timeout=10,
        message="delivery recorded",
    )
    assert not collector.named(tracing.ATTEMPT)  # still queued in the worker
    cluster.stop()  # SIGTERM to the whole process group
    (attempt,) = wait_until(
        lambda: collector.named(tracing.ATTEMPT), timeout=10, message="spans flushed at exit"
    )
    assert attempt.attributes["webhookhub.event.id"] == event.public_id
    assert collector.named(tracing.RECORD)
