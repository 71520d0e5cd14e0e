"""The batch path: all or nothing, idempotent per item, and a constant number of
statements whatever its size."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from deliveries.models import Delivery
from events.models import Event
from events.services import events_publish_batch, publish
from tests.factories import PartnerFactory, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


def items(n, partner, **extra):
    return [{"type": "order.paid", "data": {"n": i}, "partner": partner, **extra} for i in range(n)]


def test_a_batch_of_100_is_one_insert_of_events_and_one_of_deliveries(event_types):
    partner = PartnerFactory()
    first, second = make_endpoint(partner=partner), make_endpoint(partner=partner)
    events_publish_batch(items(1, partner.public_id))  # warm the routing cache
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        results = events_publish_batch(items(100, partner.public_id))
    # On PostgreSQL the deliveries' INSERT is a WITH … (INSERT …) that also notifies.
    inserts = [q["sql"] for q in queries.captured_queries if "INSERT INTO" in q["sql"]]
    tables = [sql.split("INSERT INTO", 1)[1].split()[0].strip('"') for sql in inserts]
    if connection.vendor == "postgresql":
        assert tables == ["events_event", "deliveries_delivery", "django_q_ormq"], tables
    else:  # SQLite caps the variables of one statement: a few multi-row INSERTs
        assert len(tables) < 20 and tables[0] == "events_event", tables
    assert all(created for _, created in results)
    assert [e.payload["n"] for e, _ in results] == list(range(100)), "in order"
    assert Delivery.objects.filter(event__in=[e for e, _ in results]).count() == 200
    assert {e.deliveries_count for e, _ in results} == {2}
    assert set(Delivery.objects.values_list("endpoint_id", flat=True)) == {first.pk, second.pk}


def test_keys_stored_or_repeated_in_the_batch_return_the_first_event(event_types):
    partner = PartnerFactory()
    make_endpoint(partner=partner)
    stored = publish("order.paid", {"n": "stored"}, partner=partner, idempotency_key="k-stored")
    batch = [
        {"type": "order.paid", "data": {"n": 0}, "idempotency_key": "k-stored"},
        {"type": "order.paid", "data": {"n": 1}, "idempotency_key": "k-new"},
        {"type": "order.paid", "data": {"n": 2}, "idempotency_key": "k-new"},
        {"type": "order.paid", "data": {"n": 3}},
    ]
    results = events_publish_batch(batch)
    assert [created for _, created in results] == [False, True, False, True]
    assert results[0][0].pk == stored.pk and results[2][0].pk == results[1][0].pk
    assert Event.objects.filter(idempotency_key="k-new").count() == 1
    assert Event.objects.count() == 3
    again = events_publish_batch(batch)
    assert [created for _, created in again] == [False, False, False, True]
    assert [e.pk for e, _ in again[:3]] == [e.pk for e, _ in results[:3]]


def test_one_bad_item_writes_nothing_and_names_its_index(event_types):
    from django.core.exceptions import ValidationError

    partner = PartnerFactory()
    make_endpoint(partner=partner)
    batch = items(5, partner.public_id)
    batch[3]["type"] = "nope.never"
    with pytest.raises(ValidationError) as refused:
        events_publish_batch(batch)
    assert list(refused.value.message_dict) == ["3.type"]
    assert not Event.objects.exists() and not Delivery.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent writers")
def test_two_concurrent_batches_sharing_a_key_publish_it_once(event_types, caplog):
    import threading
    import time

    from django.db import connections

    make_endpoint()
    barrier = threading.Barrier(2)
    results, errors = {}, []

    def publisher(name, keys):
        try:
            with transaction.atomic():
                barrier.wait(timeout=5)
                batch = [
                    {"type": "order.paid", "data": {"k": k}, "idempotency_key": k} for k in keys
                ]
                results[name] = events_publish_batch(batch)
                time.sleep(0.5)  # hold the transaction: the other batch meets k2 uncommitted
        except Exception as exc:  # the test fails below with the error shown
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=publisher, args=("a", ["k1", "k2"])),
        threading.Thread(target=publisher, args=("b", ["k2", "k3"])),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert errors == []
    shared = {results["a"][1][0].pk, results["b"][0][0].pk}
    assert len(shared) == 1, "both batches return the one event of k2"
    assert sorted(Event.objects.values_list("idempotency_key", flat=True)) == ["k1", "k2", "k3"]
    assert Delivery.objects.count() == 3
    assert "item by item" in caplog.text, "one batch met the other's uncommitted key"
