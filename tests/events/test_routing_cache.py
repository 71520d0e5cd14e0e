"""publish()'s lookups are cached per process (events.routing): an edit made through
the services applies at once; one made elsewhere (another process) within the TTL."""

import time

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from deliveries.models import Delivery
from endpoints.models import Endpoint, Subscription
from endpoints.services import endpoint_disable, endpoint_enable, subscriptions_set
from events.catalog import event_type_archive
from events.models import EventType
from events.routing import Route, routes
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


def reached(event) -> set[int]:
    return set(Delivery.objects.filter(event=event).values_list("endpoint_id", flat=True))


def test_a_warm_publish_reads_nothing_and_writes_the_event_and_its_delivery(event_types):
    """Inside the transaction: two INSERTs. After the commit: one read of the endpoint's
    drain lease (is a worker on it already?) and the wake-up task."""
    partner = PartnerFactory()
    endpoint = make_endpoint(partner=partner, event_types=["order.*"])
    publish("order.paid", {"warm": True}, partner=partner.public_id)
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        event = publish("order.paid", {"n": 1}, partner=partner.public_id)
    sql = [q["sql"] for q in queries.captured_queries]
    selects = [s for s in sql if s.startswith("SELECT")]
    assert len(selects) == 1 and "deliveries_endpointhealth" in selects[0], sql
    # event, delivery (on PostgreSQL a WITH … that also notifies running drains), task
    assert len([s for s in sql if "INSERT INTO" in s]) == 3, sql
    assert sql.index(selects[0]) > max(i for i, s in enumerate(sql) if "deliveries_delivery" in s)
    assert not [s for s in sql if "SAVEPOINT" in s], sql
    assert reached(event) == {endpoint.pk}


def test_edits_through_the_services_apply_to_the_next_publish_at_once(event_types):
    partner = PartnerFactory()
    first = make_endpoint(partner=partner, event_types=["order.paid"])
    assert reached(publish("order.paid", {}, partner=partner)) == {first.pk}
    second = make_endpoint(partner=partner, event_types=["*"])
    assert reached(publish("order.paid", {}, partner=partner)) == {first.pk, second.pk}
    endpoint_disable(first, by="admin:sam", reason="off")
    # Switched off: still routed (its delivery is held), and not woken.
    held = publish("order.paid", {}, partner=partner)
    assert reached(held) == {first.pk, second.pk}
    assert Route(first.pk, (), False) in routes("order.paid", partner.pk)
    endpoint_enable(first, by="admin:sam")
    subscriptions_set(second, ["shipment.moved"])
    assert reached(publish("order.paid", {}, partner=partner)) == {first.pk}
    first.filter = {"path": "data.amount", "op": "gt", "value": 10}
    first.save()
    assert reached(publish("order.paid", {"amount": 5}, partner=partner)) == set()
    assert reached(publish("order.paid", {"amount": 50}, partner=partner)) == {first.pk}
    partner.is_active = False
    partner.save()
    with pytest.raises(ValidationError, match="inactive"):
        publish("order.paid", {}, partner=partner.public_id)
    event_type_archive(event_types["order.refunded"], by="admin:sam")
    with pytest.raises(ValidationError, match="Unknown event type"):
        publish("order.refunded", {})


def test_an_edit_made_elsewhere_applies_within_the_cache_seconds(event_types, settings):
    """A conditional UPDATE sends no signal, as an edit in another process does not."""
    settings.WEBHOOKHUB_ROUTING_CACHE_SECONDS = 0.3
    partner = PartnerFactory()
    endpoint = make_endpoint(partner=partner)
    assert reached(publish("order.paid", {}, partner=partner)) == {endpoint.pk}
    Endpoint.objects.filter(pk=endpoint.pk).update(enabled=False)
    Subscription.objects.filter(endpoint=endpoint).update(event_type="shipment.moved")
    EventType.objects.filter(name="order.paid").update(description="changed elsewhere")
    assert reached(publish("order.paid", {}, partner=partner)) == {endpoint.pk}, "cached"
    time.sleep(0.35)
    assert reached(publish("order.paid", {}, partner=partner)) == set()


def test_with_the_cache_off_every_publish_reads_the_database(event_types, settings):
    settings.WEBHOOKHUB_ROUTING_CACHE_SECONDS = 0
    partner = PartnerFactory()
    endpoint = make_endpoint(partner=partner)
    assert reached(publish("order.paid", {}, partner=partner)) == {endpoint.pk}
    Subscription.objects.filter(endpoint=endpoint).update(event_type="shipment.moved")
    assert reached(publish("order.paid", {}, partner=partner)) == set()


def test_the_cache_stays_bounded_whatever_the_number_of_partners(event_types, monkeypatch):
    from events import routing

    monkeypatch.setattr(routing._Cache, "MAX", 5)
    partners = [PartnerFactory() for _ in range(12)]
    for partner in partners:
        make_endpoint(partner=partner)
    for partner in partners:
        assert len(reached(publish("order.paid", {}, partner=partner))) == 1
        assert len(routing._cache._entries) <= 5
