"""publish(): transactional, fanned out to exactly the right endpoints, idempotent."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test import override_settings
from django_q.models import OrmQ

from deliveries.models import Delivery, DeliveryStatus
from events.models import Event
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint
from tests.queue import queued_endpoints

pytestmark = pytest.mark.django_db(transaction=True)


def queued_endpoint_ids() -> list[int]:
    """Endpoint ids whose drain is handed to the broker (ORM broker: rows in
    django_q_ormq)."""
    return queued_endpoints()


def test_rolled_back_publish_leaves_nothing_and_enqueues_nothing(event_types):
    make_endpoint()
    with pytest.raises(RuntimeError), transaction.atomic():
        publish("order.paid", {"order": {"id": 1}})
        raise RuntimeError("caller's transaction fails")
    assert Event.objects.count() == 0
    assert Delivery.objects.count() == 0
    assert queued_endpoint_ids() == []


def seen_by_a_worker() -> list[int]:
    """The queued delivery ids as another connection (a worker) sees them now."""
    from django.db import connections

    seen = []

    def look():
        try:
            seen.extend(queued_endpoint_ids())
        finally:
            connections.close_all()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join(10)
    return seen


def test_committed_publish_writes_event_deliveries_and_enqueues_them_once(event_types):
    endpoints = [make_endpoint(name=f"ep{i}") for i in range(3)]
    with transaction.atomic():
        event = publish("order.paid", {"order": {"id": 1}}, source="shop")
        assert seen_by_a_worker() == [], "nothing is handed over before commit"
    deliveries = Delivery.objects.filter(event=event)
    assert {d.endpoint_id for d in deliveries} == {e.pk for e in endpoints}
    assert all(d.status == DeliveryStatus.PENDING and d.next_attempt_at for d in deliveries)
    assert sorted(queued_endpoint_ids()) == sorted(e.pk for e in endpoints)
    assert OrmQ.objects.count() == 1, "one task per publish, not one per delivery"
    assert event.public_id.startswith("evt_") and event.deliveries_count == 3


def test_publish_without_transaction_commits_on_its_own(event_types):
    make_endpoint()
    event = publish("order.paid", {"x": 1})
    assert Delivery.objects.filter(event=event).count() == 1
    assert len(queued_endpoint_ids()) == 1


@pytest.mark.parametrize(
    ("subscriptions", "event_type", "payload", "receives"),
    [
        (["order.paid"], "order.paid", {}, True),
        (["order.paid"], "order.refunded", {}, False),
        (["order.*"], "order.refunded", {}, True),
        (["order.*"], "shipment.moved", {}, False),
        (["*"], "shipment.moved", {}, True),
        (["*"], "webhookhub.endpoint.disabled", {}, False),
        (["webhookhub.*"], "webhookhub.endpoint.disabled", {}, True),
        (["shipment.moved", "order.*"], "order.paid", {}, True),
        (
            [
                {
                    "event_type": "order.paid",
                    "filter": {"path": "data.amount", "op": "gte", "value": 100},
                }
            ],
            "order.paid",
            {"amount": 150},
            True,
        ),
        (
            [
                {
                    "event_type": "order.paid",
                    "filter": {"path": "data.amount", "op": "gte", "value": 100},
                }
            ],
            "order.paid",
            {"amount": 50},
            False,
        ),
        (
            [
                {
                    "event_type": "order.paid",
                    "filter": {"path": "data.amount", "op": "gte", "value": 100},
                },
                {"event_type": "order.*"},
            ],
            "order.paid",
            {"amount": 50},
            True,
        ),
        (
            [
                {
                    "event_type": "*",
                    "filter": {
                        "or": [
                            {"path": "data.country", "op": "in", "value": ["DE", "FR"]},
                            {"path": "data.vip", "op": "exists", "value": True},
                        ]
                    },
                }
            ],
            "order.paid",
            {"country": "US", "vip": None},
            True,
        ),
    ],
)
def test_fan_out_follows_subscriptions_wildcards_and_filters(
    event_types, subscriptions, event_type, payload, receives
):
    from events.models import EventType

    EventType.objects.get_or_create(name="webhookhub.endpoint.disabled")
    endpoint = make_endpoint(event_types=subscriptions)
    event = publish(event_type, payload)
    assert Delivery.objects.filter(event=event, endpoint=endpoint).exists() is receives


def test_endpoint_level_filter_applies_to_every_subscription(event_types):
    endpoint = make_endpoint(filter={"path": "data.currency", "op": "eq", "value": "EUR"})
    assert Delivery.objects.filter(
        event=publish("order.paid", {"currency": "EUR"}), endpoint=endpoint
    ).exists()
    assert not Delivery.objects.filter(
        event=publish("order.paid", {"currency": "USD"}), endpoint=endpoint
    ).exists()


def test_partner_event_never_reaches_another_partner_and_broadcast_reaches_all(event_types):
    acme, globex = PartnerFactory(name="Acme"), PartnerFactory(name="Globex")
    acme_ep, globex_ep = make_endpoint(acme), make_endpoint(globex)
    only_acme = publish("order.paid", {}, partner=acme)
    assert list(only_acme.deliveries.values_list("endpoint_id", flat=True)) == [acme_ep.pk]
    by_public_id = publish("order.paid", {}, partner=globex.public_id)
    assert list(by_public_id.deliveries.values_list("endpoint_id", flat=True)) == [globex_ep.pk]
    broadcast = publish("order.paid", {})
    assert set(broadcast.deliveries.values_list("endpoint_id", flat=True)) == {
        acme_ep.pk,
        globex_ep.pk,
    }


def test_switched_off_endpoints_hold_and_inactive_partners_receive_nothing(event_types):
    from django_q.models import OrmQ

    from endpoints.services import endpoint_disable
    from tests.queue import queued_endpoints

    off = make_endpoint(name="off")
    endpoint_disable(off, by="test", reason="maintenance")
    sleeping = PartnerFactory(name="Sleeping", is_active=False)
    make_endpoint(sleeping)
    on = make_endpoint(name="on")
    OrmQ.objects.all().delete()
    event = publish("order.paid", {})
    assert set(event.deliveries.values_list("endpoint_id", flat=True)) == {on.pk, off.pk}
    assert event.deliveries.get(endpoint=off).status == "pending"  # held until it is on
    assert queued_endpoints() == [on.pk], "the switched-off endpoint is not woken"


def test_repeated_idempotency_key_returns_first_event_and_creates_nothing(event_types):
    make_endpoint()
    first = publish("order.paid", {"n": 1}, idempotency_key="order-1-paid")
    again = publish("order.paid", {"n": 2}, idempotency_key="order-1-paid")
    assert again.pk == first.pk and again.created is False and first.created is True
    assert again.payload == {"n": 1}
    assert Event.objects.count() == 1 and Delivery.objects.count() == 1
    assert len(queued_endpoint_ids()) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers")
def test_idempotency_key_holds_under_two_concurrent_publishers(event_types):
    make_endpoint()
    barrier = threading.Barrier(2)
    results, errors = [], []

    def publisher(n):
        from django.db import connections

        try:
            with transaction.atomic():
                barrier.wait(timeout=5)
                event = publish("order.paid", {"n": n}, idempotency_key="same-key")
                results.append(event.pk)
        except Exception as exc:  # the test fails below with the error shown
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=publisher, args=(n,)) for n in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 2
    assert Event.objects.count() == 1 and Delivery.objects.count() == 1


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"event_type": "order.unknown", "data": {}}, "type", "Unknown event type"),
        ({"event_type": "", "data": {}}, "type", "event type name"),
        ({"event_type": "order.paid", "data": ["not", "an", "object"]}, "data", "JSON object"),
        ({"event_type": "order.paid", "data": {"when": object()}}, "data", "not JSON-serialisable"),
        (
            {"event_type": "order.paid", "data": {"n": float("nan")}},
            "data",
            "not JSON-serialisable",
        ),
        (
            {"event_type": "order.paid", "data": {}, "partner": "prt_nope"},
            "partner",
            "Unknown or inactive",
        ),
        ({"event_type": "order.paid", "data": {}, "tags": "vip"}, "tags", "list of strings"),
        ({"event_type": "order.paid", "data": {}, "tags": [1]}, "tags", "strings"),
        (
            {"event_type": "order.paid", "data": {}, "idempotency_key": ""},
            "idempotency_key",
            "1 to 200",
        ),
        (
            {"event_type": "order.paid", "data": {}, "idempotency_key": "k" * 201},
            "idempotency_key",
            "1 to 200",
        ),
        ({"event_type": "order.paid", "data": {}, "source": "s" * 201}, "source", "at most 200"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_writes_nothing(
    event_types, kwargs, field, message
):
    make_endpoint()
    event_type, data = kwargs.pop("event_type"), kwargs.pop("data")
    with pytest.raises(ValidationError) as exc:
        publish(event_type, data, **kwargs)
    assert field in exc.value.message_dict
    assert message in " ".join(exc.value.message_dict[field])
    assert Event.objects.count() == 0 and Delivery.objects.count() == 0
    assert queued_endpoint_ids() == []


@override_settings(WEBHOOKHUB_MAX_PAYLOAD_BYTES=1024)
def test_oversized_payload_is_refused_and_writes_nothing(event_types):
    make_endpoint()
    with pytest.raises(ValidationError) as exc:
        publish("order.paid", {"blob": "x" * 2000})
    assert exc.value.error_dict["data"][0].code == "payload_too_large"
    assert "limit is 1024 bytes" in exc.value.message_dict["data"][0]
    assert Event.objects.count() == 0
    publish("order.paid", {"blob": "x" * 100})  # under the limit is fine


def test_archived_event_type_cannot_be_published(event_types):
    from django.utils import timezone

    event_types["order.refunded"].archived_at = timezone.now()
    event_types["order.refunded"].save()
    with pytest.raises(ValidationError, match="Unknown event type"):
        publish("order.refunded", {})


def test_envelope_is_stored_once_with_id_type_timestamp_and_data(event_types):
    import json

    event = publish("order.paid", {"order": {"id": 7, "name": "Müller"}})
    envelope = json.loads(event.body)
    assert list(envelope) == ["id", "type", "timestamp", "data"]
    assert envelope["id"] == event.public_id and envelope["type"] == "order.paid"
    assert envelope["data"] == {"order": {"id": 7, "name": "Müller"}}


def test_publishes_in_one_transaction_share_one_task(event_types):
    make_endpoint()
    with transaction.atomic():
        events = [publish("order.paid", {"n": n}) for n in range(5)]
        with pytest.raises(RuntimeError), transaction.atomic():
            publish("order.paid", {"rolled": "back"})
            raise RuntimeError
        events.append(publish("order.paid", {"n": 5}))
    assert OrmQ.objects.count() == 1
    assert queued_endpoint_ids() == [Delivery.objects.filter(event__in=events)[0].endpoint_id]
