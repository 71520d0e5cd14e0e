"""Tracing (webhookhub.tracing), in this process with the SDK's in-memory exporter: one
trace from the API request through publish(), the hand-off, the claim, each attempt —
retries too — and the recording; the stored trace context; the opt-in `traceparent`
header; trace ids in the JSON logs; nothing at all when tracing is off."""

import json
import logging
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, StatusCode

from deliveries import engine
from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import Endpoint
from events.models import Event
from events.services import publish
from tests.factories import make_endpoint
from tests.receiver import Response
from tests.tracing import hex_span, hex_trace
from webhookhub import tracing
from webhookhub.logs import RedactingJsonFormatter

pytestmark = pytest.mark.django_db

INCOMING = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def post_event(api, capture, **body):
    with capture(execute=True):  # the hand-off runs on commit
        response = api.post("/api/v1/events/", {"type": "order.paid", "data": {}, **body})
    assert response.status_code == 201, response.content
    return Event.objects.get(public_id=response.json()["id"])


def traceparent_of(span) -> str:
    return f"00-{hex_trace(span)}-{hex_span(span)}-{int(span.get_span_context().trace_flags):02x}"


@pytest.mark.parametrize(
    ("environ", "exporters"),
    [
        ({}, []),
        ({"OTEL_SERVICE_NAME": "hub"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"}, []),
    ],
)
def test_tracing_is_off_unless_an_exporter_is_configured(environ, exporters):
    assert tracing.exporters_configured(environ) == exporters


def test_setup_without_a_usable_exporter_leaves_tracing_off():
    assert tracing.setup({}) is False
    assert tracing.setup({"OTEL_TRACES_EXPORTER": "zipkin"}) is False  # not installed
    assert (
        tracing.setup(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
        )
        is False
    )
    assert not tracing.enabled()


def test_api_publish_to_attempt_is_one_trace(
    spans, publisher_api, event_types, receiver, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(url=receiver.url_for("/hook"), send_traceparent=True)
    event = post_event(publisher_api, django_capture_on_commit_callbacks)

    (request,) = [s for s in spans.all() if s.kind == SpanKind.SERVER]
    assert request.name == "POST api/v1/events/$"  # the route, as the router writes it
    publish_span = spans.one(tracing.PUBLISH)
    handoff = spans.one(tracing.HANDOFF)
    assert request.kind == SpanKind.SERVER and request.parent is None
    assert publish_span.parent.span_id == request.context.span_id
    assert handoff.parent.span_id == publish_span.context.span_id
    assert handoff.attributes["webhookhub.tasks"] == 1
    assert publish_span.attributes["webhookhub.event.id"] == event.public_id
    assert publish_span.attributes["webhookhub.deliveries"] == 1
    # The event keeps the publish's context: the attempts' parent, in any process.
    assert event.traceparent == traceparent_of(publish_span)

    delivery = Delivery.objects.get(event=event)
    engine.deliver([delivery.pk])
    attempt = spans.one(tracing.ATTEMPT)
    assert attempt.kind == SpanKind.CLIENT
    assert attempt.context.trace_id == request.context.trace_id
    assert attempt.parent.span_id == publish_span.context.span_id
    assert attempt.attributes == {
        "webhookhub.endpoint.id": endpoint.public_id,
        "webhookhub.delivery.id": delivery.public_id,
        "webhookhub.event.id": event.public_id,
        "webhookhub.attempt.number": 1,
        "webhookhub.attempt.trigger": "auto",
        "http.request.method": "POST",
        "server.address": "127.0.0.1",
        "server.port": receiver.port,
        "http.response.status_code": 200,
    }
    # One delivery of one trace: the claim and the record are children in it.
    claim, record = spans.one(tracing.CLAIM), spans.one(tracing.RECORD)
    assert claim.parent.span_id == publish_span.context.span_id and not claim.links
    assert record.parent.span_id == attempt.context.span_id
    assert claim.attributes["webhookhub.endpoint.id"] == endpoint.public_id
    # The receiver got the attempt's own context, and the attempt row shows what went.
    (received,) = receiver.requests
    assert received.headers["traceparent"] == traceparent_of(attempt)
    row = delivery.attempts.get()
    assert row.request_headers["traceparent"] == traceparent_of(attempt)


def test_incoming_traceparent_is_continued(
    spans, publisher_api, event_types, django_capture_on_commit_callbacks
):
    make_endpoint()
    publisher_api.credentials(
        HTTP_AUTHORIZATION=publisher_api._credentials["HTTP_AUTHORIZATION"],
        HTTP_TRACEPARENT=INCOMING,
    )
    event = post_event(publisher_api, django_capture_on_commit_callbacks)
    assert event.traceparent.split("-")[1] == INCOMING.split("-")[1]
    assert spans.one(tracing.PUBLISH).context.trace_id == int(INCOMING.split("-")[1], 16)


def test_retries_join_the_publish_trace_and_fail_visibly(spans, event_types, receiver):
    endpoint = make_endpoint(
        url=receiver.url_for(),
        retry_policy={"strategy": "fixed", "base_delay": 5, "jitter": 0, "max_attempts": 3},
    )
    receiver.script(Response(503, body="busy"), Response(200))
    event = publish("order.paid", {"n": 1})
    delivery = Delivery.objects.get(event=event, endpoint=endpoint)
    engine.deliver([delivery.pk])
    with time_machine.travel(timezone.now() + timedelta(seconds=6), tick=True):
        engine.deliver([delivery.pk])
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED
    publish_span = spans.one(tracing.PUBLISH)
    first, second = sorted(spans.named(tracing.ATTEMPT), key=lambda s: s.start_time)
    for attempt in (first, second):
        assert attempt.parent.span_id == publish_span.context.span_id
        assert attempt.context.trace_id == publish_span.context.trace_id
    assert first.attributes["webhookhub.attempt.number"] == 1
    assert first.attributes["http.response.status_code"] == 503
    assert first.attributes["webhookhub.error.kind"] == "http_status"
    assert first.status.status_code == StatusCode.ERROR
    assert second.attributes["webhookhub.attempt.number"] == 2
    assert second.attributes["webhookhub.attempt.trigger"] == "retry"
    assert second.status.status_code == StatusCode.UNSET
    # Nothing was opted in: no header went out.
    assert all("traceparent" not in r.headers for r in receiver.requests)


def test_a_batch_claim_links_every_trace_it_serves(spans, event_types, receiver):
    make_endpoint(url=receiver.url_for())
    events = [publish("order.paid", {"n": n}) for n in range(3)]  # three traces
    engine.deliver(list(Delivery.objects.values_list("pk", flat=True)))
    assert len(receiver.requests) == 3
    publishes = {s.context.span_id: s for s in spans.named(tracing.PUBLISH)}
    claim = spans.one(tracing.CLAIM)
    assert claim.parent is None and claim.attributes["webhookhub.deliveries"] == 3
    assert {link.context.span_id for link in claim.links} == set(publishes)
    attempts = spans.named(tracing.ATTEMPT)
    assert {a.parent.span_id for a in attempts} == set(publishes)
    assert {a.attributes["webhookhub.event.id"] for a in attempts} == {e.public_id for e in events}
    recorded = spans.named(tracing.RECORD)
    linked = {link.context.span_id for r in recorded for link in r.links}
    linked |= {r.parent.span_id for r in recorded if r.parent is not None}
    assert linked == {a.context.span_id for a in attempts}


def test_a_batch_publish_is_one_span_whose_events_share_its_context(
    spans, publisher_api, event_types, django_capture_on_commit_callbacks
):
    make_endpoint()
    with django_capture_on_commit_callbacks(execute=True):
        response = publisher_api.post(
            "/api/v1/events/batch/",
            [{"type": "order.paid", "data": {"n": n}} for n in range(3)],
        )
    assert response.status_code in (200, 201), response.content
    batch = spans.one(tracing.PUBLISH)
    assert batch.attributes == {"webhookhub.events": 3, "webhookhub.events.created": 3}
    assert set(Event.objects.values_list("traceparent", flat=True)) == {traceparent_of(batch)}


def test_the_log_line_of_an_attempt_names_its_span(spans, event_types, receiver, caplog):
    make_endpoint(url=receiver.url_for())
    event = publish("order.paid", {})
    with caplog.at_level(logging.INFO, logger="deliveries.engine"):
        engine.deliver(list(Delivery.objects.filter(event=event).values_list("pk", flat=True)))
    (line,) = [r for r in caplog.records if r.getMessage().startswith("delivery attempt")]
    attempt = spans.one(tracing.ATTEMPT)
    formatted = json.loads(RedactingJsonFormatter().format(line))
    assert formatted["trace_id"] == hex_trace(attempt)
    assert formatted["span_id"] == hex_span(attempt)


def test_json_log_lines_carry_the_current_span(spans):
    formatter = RedactingJsonFormatter()
    outside = logging.makeLogRecord({"msg": "outside"})
    assert "trace_id" not in json.loads(formatter.format(outside))
    with spans.provider.get_tracer("test").start_as_current_span("work") as span:
        inside = json.loads(formatter.format(logging.makeLogRecord({"msg": "inside"})))
    assert inside["trace_id"] == hex_trace(span) and inside["span_id"] == hex_span(span)


def test_tracing_off_stores_no_context_and_sends_no_header(event_types, receiver):
    assert not tracing.enabled()
    make_endpoint(url=receiver.url_for(), send_traceparent=True)
    event = publish("order.paid", {})
    assert (event.traceparent, event.tracestate) == ("", "")
    engine.deliver(list(Delivery.objects.filter(event=event).values_list("pk", flat=True)))
    (received,) = receiver.requests
    assert "traceparent" not in received.headers


def test_a_callers_own_trace_is_kept_when_webhookhub_does_not_trace(event_types, receiver):
    """The publishing code traces with a provider of its own; webhookhub's is off."""
    assert not tracing.enabled()
    make_endpoint(url=receiver.url_for(), send_traceparent=True)
    caller = TracerProvider().get_tracer("checkout")
    with caller.start_as_current_span("checkout") as span:
        event = publish("order.paid", {})
    assert event.traceparent == traceparent_of(span)
    engine.deliver(list(Delivery.objects.filter(event=event).values_list("pk", flat=True)))
    (received,) = receiver.requests
    assert received.headers["traceparent"] == traceparent_of(span)


def test_traceparent_is_webhookhubs_header_not_a_custom_one(publisher_api, partner_api, partner):
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "x", "url": "https://example.com/hook", "headers": {"traceparent": INCOMING}},
    )
    assert created.status_code == 400, created.content
    assert "headers" in created.json()["errors"]
    created = partner_api.post(
        "/api/v1/endpoints/",
        {"name": "y", "url": "https://example.com/hook", "send_traceparent": True},
    )
    assert created.status_code == 201, created.content
    assert created.json()["send_traceparent"] is True
    endpoint = Endpoint.objects.get(public_id=created.json()["id"])
    assert endpoint.send_traceparent is True
    changed = partner_api.patch(
        f"/api/v1/endpoints/{endpoint.public_id}/", {"send_traceparent": False}
    )
    assert changed.status_code == 200 and changed.json()["send_traceparent"] is False
    refused = partner_api.patch(
        f"/api/v1/endpoints/{endpoint.public_id}/", {"send_traceparent": "yes"}
    )
    assert refused.status_code == 400


def test_the_claim_brings_the_trace_context_along(spans, event_types, django_assert_num_queries):
    """Tracing costs a drain no query: the claim returns the event's trace columns."""
    from deliveries import lifecycle

    endpoint = make_endpoint()
    event = publish("order.paid", {})
    assert event.traceparent
    (claimed,) = lifecycle.claim(
        endpoint.pk, limit=5, token="t", lease=timedelta(seconds=30), now=timezone.now()
    )
    with django_assert_num_queries(0):
        assert claimed.event.traceparent == event.traceparent
        assert claimed.event.tracestate == ""
        assert tracing.event_context(claimed.event) is not None


def test_a_malformed_stored_context_starts_a_new_trace_and_the_webhook_goes(
    spans, event_types, receiver
):
    make_endpoint(url=receiver.url_for(), send_traceparent=True)
    event = publish("order.paid", {})
    Event.objects.filter(pk=event.pk).update(traceparent="00-not-a-trace-context")
    engine.deliver(list(Delivery.objects.filter(event=event).values_list("pk", flat=True)))
    attempt = spans.one(tracing.ATTEMPT)
    assert attempt.parent is None
    assert attempt.context.trace_id != spans.one(tracing.PUBLISH).context.trace_id
    (received,) = receiver.requests
    assert received.headers["traceparent"] == traceparent_of(attempt)
    assert Delivery.objects.get(event=event).status == DeliveryStatus.SUCCEEDED
