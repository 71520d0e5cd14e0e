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
    assert "Switched off by admin:kim" in text and "receiver moving" in text
    assert reverse("admin:events_event_replay", args=[event.pk]) in page.content.decode()

    before = len(receiver.requests)
    confirm = sam.get(reverse("admin:events_event_replay", args=[event.pk]))
    assert confirm.status_code == 200
    done = sam.post(
        reverse("admin:events_event_replay", args=[event.pk]),
        {"reason": "partner lost it"},
        follow=True,
    )
    # Both deliveries are queued again; the switched-off endpoint's stays held.
    assert "2 deliveries queued" in _text(done)
    run_queue()
    assert len(receiver.requests) == before + 1
    entry = AuditEntry.objects.get(action=Action.REPLAYED)
    assert (entry.actor, entry.reason, entry.count) == ("admin:sam", "partner lost it", 2)
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


def test_probe_now_and_close_circuit_from_the_endpoint_page(sam, event_types, receiver):
    partner = PartnerFactory(name="Acme")
    endpoint = make_endpoint(partner, url=receiver.url_for(), name="Acme orders")
    receiver.default = Response(500, body="down")
    for n in range(settings.WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD):
        publish("order.paid", {"n": n}, partner=partner)
        run_queue()
    waiting = Delivery.objects.get(event=publish("order.paid", {"n": "x"}, partner=partner))
    run_queue()

    # The list says so in its state column, and its circuit filter finds it.
    listing = sam.get(reverse("admin:endpoints_endpoint_changelist"), {"circuit": "open,half_open"})
    assert listing.status_code == 200
    assert "Acme orders" in _text(listing) and "circuit open" in _text(listing)
    page = sam.get(reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])).content.decode()
    assert 'id="action-probe"' in page and 'id="action-close-circuit"' in page

    probe = reverse("admin:endpoints_endpoint_probe", args=[endpoint.pk])
    assert "failures in a row" in _text(sam.get(probe))
    receiver.default = Response(200)
    sam.post(probe, {"reason": "partner says it is fixed"})
    run_queue()
    run_queue()
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.SUCCEEDED
    assert EndpointHealth.objects.get(pk=endpoint.pk).circuit_state == CircuitState.CLOSED
    entry = AuditEntry.objects.get(action=Action.CIRCUIT_PROBED)
    assert (entry.actor, entry.reason) == ("admin:sam", "partner says it is fixed")
    # Closed now: the buttons are gone, and closing again says it was closed.
    page = sam.get(reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])).content.decode()
    assert 'id="action-probe"' not in page
    done = sam.post(
        reverse("admin:endpoints_endpoint_close_circuit", args=[endpoint.pk]), {}, follow=True
    )
    assert "already closed" in _text(done)


def test_circuit_actions_need_their_own_permission(viewer_user, event_types):
    endpoint = make_endpoint(PartnerFactory(name="Acme"))
    vic = Client()
    vic.force_login(viewer_user)
    for name in ("probe", "close_circuit"):
        url = reverse(f"admin:endpoints_endpoint_{name}", args=[endpoint.pk])
        assert vic.get(url).status_code == 403
        assert vic.post(url).status_code == 403
    assert not AuditEntry.objects.filter(action__startswith="endpoint.circuit").exists()
