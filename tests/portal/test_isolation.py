"""Partner isolation: every portal URL naming an object, asked from another partner's
session, is a 404 and changes nothing; without a session, nothing at all."""

import pytest
from django.test import Client

from audit.models import AuditEntry
from deliveries.models import Delivery, DeliveryStatus
from deliveries.services import endpoint_test_queue
from endpoints.models import Endpoint
from events.models import Event
from events.services import publish
from portal import urls as portal_urls

pytestmark = pytest.mark.django_db

# (method, route name, data) over Acme's endpoint ("E") or delivery ("D").
MATRIX = [
    ("get", "edit", "E", None),
    ("post", "edit", "E", {"name": "stolen", "url": "https://evil.example/x"}),
    ("post", "toggle", "E", {}),
    ("get", "delete", "E", None),
    ("post", "delete", "E", {}),
    ("get", "rotate", "E", None),
    ("post", "rotate", "E", {"grace_hours": 0}),
    ("get", "test", "E", None),
    ("post", "test", "E", {}),
    ("get", "endpoint_deliveries", "E", None),
    ("get", "recover", "E", None),
    ("post", "recover", "E", {"since": "2020-01-01T00:00", "confirm": "1"}),
    ("get", "verification", "E", None),
    ("post", "verification", "E", {"again": "1"}),
    ("post", "verification", "E", {"challenge": "whch_anything"}),
    ("get", "delivery", "D", None),
    ("post", "retry", "D", {}),
]


def snapshot(endpoint):
    row = Endpoint.objects.filter(pk=endpoint.pk).values().first()
    deliveries = list(
        Delivery.objects.filter(endpoint=endpoint).values_list("pk", "status", "attempt_count")
    )
    return row, deliveries, AuditEntry.objects.count(), Event.objects.count()


@pytest.fixture
def acme_objects(acme_endpoint, acme):
    event = publish("order.paid", {"order": {"id": 1}}, partner=acme)
    delivery = event.deliveries.get()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=DeliveryStatus.DEAD, attempt_count=3, last_status_code=500
    )
    return {"E": acme_endpoint.public_id, "D": delivery.public_id}


def test_every_object_url_is_in_the_matrix():
    named = {
        p.name
        for p in portal_urls.urlpatterns
        if "endpoint_id" in str(p.pattern) or "delivery_id" in str(p.pattern)
    }
    assert named == {name for _m, name, _o, _d in MATRIX}


@pytest.mark.parametrize(("method", "name", "kind", "data"), MATRIX)
def test_another_partners_object_is_a_404_and_nothing_changes(
    acme_objects, acme_endpoint, globex_client, globex_endpoint, method, name, kind, data
):
    from django.urls import reverse

    before = snapshot(acme_endpoint)
    url = reverse(f"portal:{name}", args=[acme_objects[kind]])
    response = getattr(globex_client, method)(url, data or {})
    assert response.status_code == 404
    assert snapshot(acme_endpoint) == before
    assert acme_objects[kind].encode() not in response.content


def test_another_partners_test_delivery_is_a_404(acme_endpoint, globex_client, globex_endpoint):
    delivery = endpoint_test_queue(acme_endpoint, by="test")
    url = f"/portal/webhooks/{globex_endpoint.public_id}/test/?delivery={delivery.public_id}"
    assert globex_client.get(url).status_code == 404


def test_lists_show_only_the_own_partners_objects(acme_objects, acme_endpoint, globex_client):
    for url in ("/portal/", "/portal/deliveries/", "/portal/verifying/"):
        response = globex_client.get(url)
        assert response.status_code == 200
        assert acme_endpoint.public_id.encode() not in response.content
        assert acme_objects["D"].encode() not in response.content
    preview = globex_client.post("/portal/filter-preview/", {"event_types__pick": "*"})
    assert preview.status_code == 200
    assert Event.objects.get(deliveries__public_id=acme_objects["D"]).public_id.encode() not in (
        preview.content
    )


@pytest.mark.parametrize(("method", "name", "kind", "data"), MATRIX)
def test_without_a_session_nothing_is_shown_or_changed(
    acme_objects, acme_endpoint, method, name, kind, data
):
    from django.urls import reverse

    before = snapshot(acme_endpoint)
    response = getattr(Client(), method)(reverse(f"portal:{name}", args=[acme_objects[kind]]), data)
    assert response.status_code in (403, 405)
    assert snapshot(acme_endpoint) == before
