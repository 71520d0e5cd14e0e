"""The support console says why, offers Replay / Retry on the pages, and keeps the
audit trail — as a Support-group user sees it through the real admin."""

import html
import re

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.test import Client
from django.urls import reverse

from audit.models import Action, AuditEntry
from deliveries.models import CircuitState, Delivery, DeliveryStatus, EndpointHealth
from endpoints.services import endpoint_disable
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint
from tests.queue import run_queue
from tests.receiver import Response


@pytest.fixture
def sam(support_user):
    client = Client()
    client.force_login(support_user)
    return client


def _text(response) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


def test_the_delivery_page_says_why_it_waits_behind_an_open_circuit(sam, event_types, receiver):
    partner = PartnerFactory(name="Acme")
    endpoint = make_endpoint(partner, url=receiver.url_for(), name="Acme orders")
    receiver.default = Response(500, body="down")
    for n in range(settings.WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD):
        publish("order.paid", {"n": n}, partner=partner)
        run_queue()
    assert EndpointHealth.objects.get(pk=endpoint.pk).circuit_state == CircuitState.OPEN
    waiting = Delivery.objects.get(event=publish("order.paid", {"n": "x"}, partner=partner))
    run_queue()

    page = sam.get(reverse("admin:deliveries_delivery_change", args=[waiting.pk]))
    assert page.status_code == 200
    text = _text(page)
    assert "Acme orders's circuit is open since" in text
    assert "HTTP 500" in text or "see the endpoint" in text
    # The list says it in a few words, the whole sentence on hover.
    listing = sam.get(reverse("admin:deliveries_delivery_changelist"), {"status__exact": "pending"})
    assert "waiting: circuit open" in _text(listing)

    # Retry now says what will really happen.
    confirm = sam.get(reverse("admin:deliveries_delivery_retry", args=[waiting.pk]))
    assert "circuit is open" in _text(confirm) and "Probe now" in _text(confirm)
    done = sam.post(
        reverse("admin:deliveries_delivery_retry", args=[waiting.pk]),
        {"reason": "customer asked"},
        follow=True,
    )
    assert "waits for the probe" in _text(done)
    entry = AuditEntry.objects.get(action=Action.RETRIED)
    assert (entry.actor, entry.reason, entry.object_id) == (
        "admin:sam",
        "customer asked",
        waiting.public_id,
    )
    # Mirrored to the admin log: "Recent actions" and the object's History.
    log = LogEntry.objects.get(user__username="sam")
    assert "customer asked" in log.change_message
    history = sam.get(reverse("admin:deliveries_delivery_history", args=[waiting.pk]))
    assert "customer asked" in _text(history)


def test_the_event_page_explains_routing_and_replays_with_a_reason(sam, event_types, receiver):
    partner = PartnerFactory(name="Acme")
    make_endpoint(partner, url=receiver.url_for(), name="everything")
    make_endpoint(
        partner,
        url=receiver.url_for(),
        name="big orders",
        filter={"path": "data.amount", "op": "gte", "value": 100},
    )
    paused = make_endpoint(partner, url=receiver.url_for(), name="paused")
    endpoint_disable(paused, by="admin:kim", reason="receiver moving")
    event = publish("order.paid", {"amount": 50}, partner=partner)
    run_queue()

    page = sam.get(reverse("admin:events_event_change", args=[event.pk]))
    text = _text(page)
    assert "data.amount gte 100 — found 50" in text
    assert "switched off by admin:kim" in text and "receiver moving" in text
    assert reverse("admin:events_event_replay", args=[event.pk]) in page.content.decode()

    before = len(receiver.requests)
    confirm = sam.get(reverse("admin:events_event_replay", args=[event.pk]))
    assert confirm.status_code == 200
    done = sam.post(
        reverse("admin:events_event_replay", args=[event.pk]),
        {"reason": "partner lost it"},
        follow=True,
    )
    assert "1 deliveries queued" in _text(done)
    run_queue()
    assert len(receiver.requests) == before + 1
    entry = AuditEntry.objects.get(action=Action.REPLAYED)
    assert (entry.actor, entry.reason, entry.count) == ("admin:sam", "partner lost it", 1)
    trail = sam.get(reverse("admin:audit_auditentry_changelist"), {"q": "admin:sam"})
    assert trail.status_code == 200 and event.public_id in trail.content.decode()


def test_the_delivery_page_has_retry_only_for_those_who_may(viewer_user, event_types, receiver):
    partner = PartnerFactory(name="Acme")
    make_endpoint(partner, url=receiver.url_for(), retry_policy={"max_attempts": 1})
    receiver.default = Response(500)
    event = publish("order.paid", {}, partner=partner)
    run_queue()
    dead = Delivery.objects.get(event=event)
    assert dead.status == DeliveryStatus.DEAD
    vic = Client()
    vic.force_login(viewer_user)
    page = vic.get(reverse("admin:deliveries_delivery_change", args=[dead.pk]))
    assert page.status_code == 200
    assert "action-retry" not in page.content.decode()
    refused = vic.post(reverse("admin:deliveries_delivery_retry", args=[dead.pk]))
    assert refused.status_code == 403
    assert not AuditEntry.objects.filter(action=Action.RETRIED).exists()


def test_a_reason_longer_than_the_trail_keeps_is_refused_on_its_field(sam, event_types, receiver):
    partner = PartnerFactory(name="Acme")
    make_endpoint(partner, url=receiver.url_for(), retry_policy={"max_attempts": 1})
    receiver.default = Response(500)
    event = publish("order.paid", {}, partner=partner)
    run_queue()
    dead = Delivery.objects.get(event=event)
    page = sam.post(
        reverse("admin:deliveries_delivery_retry", args=[dead.pk]), {"reason": "x" * 501}
    )
    assert page.status_code == 200
    assert "errorlist" in page.content.decode()
    dead.refresh_from_db()
    assert dead.status == DeliveryStatus.DEAD
    assert not AuditEntry.objects.filter(action=Action.RETRIED).exists()
