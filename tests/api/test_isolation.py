"""Isolation: a partner token sees and touches only its own partner's objects.

Every route that takes an object id is tried by each partner against the other's
object: the answer is a 404 identical to the one for an id that never existed, and
the object is left as it was. A route added to the router without a row here fails
`test_matrix_covers_every_object_route`.
"""

import pytest
from django.urls import resolve

from deliveries.models import Delivery
from endpoints.models import Endpoint
from endpoints.services import endpoint_disable, subscriptions_set
from events.models import Event
from events.services import publish
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db

# (method, path template, body): {ep}, {evt}, {dlv} are the other partner's ids.
OBJECT_ROUTES = [
    ("get", "/api/v1/endpoints/{ep}/", None),
    ("patch", "/api/v1/endpoints/{ep}/", {"name": "stolen"}),
    ("delete", "/api/v1/endpoints/{ep}/", None),
    ("post", "/api/v1/endpoints/{ep}/enable/", None),
    ("post", "/api/v1/endpoints/{ep}/disable/", {}),
    ("post", "/api/v1/endpoints/{ep}/rotate-secret/", {}),
    ("get", "/api/v1/endpoints/{ep}/public-key/", None),
    ("post", "/api/v1/endpoints/{ep}/rotate-key/", {}),
    ("post", "/api/v1/endpoints/{ep}/regenerate-token/", None),
    ("post", "/api/v1/endpoints/{ep}/test/", None),
    ("post", "/api/v1/endpoints/{ep}/recover/", {"since": "2020-01-01T00:00:00Z"}),
    ("post", "/api/v1/endpoints/{ep}/verify/", {"challenge": "whch_anything"}),
    ("post", "/api/v1/endpoints/{ep}/verification/", None),
    ("get", "/api/v1/events/{evt}/", None),
    ("post", "/api/v1/events/{evt}/replay/", {}),
    ("get", "/api/v1/events/{evt}/routing/", None),
    ("get", "/api/v1/deliveries/{dlv}/", None),
    ("post", "/api/v1/deliveries/{dlv}/retry/", None),
]
# Publisher-only routes with an object id: a partner token is refused on its role (403,
# the same answer whatever the id, before any object is looked up).
PUBLISHER_ROUTES = [
    ("delete", "/api/v1/events/{evt}/payload/", None),
]
NONEXISTENT = {"ep": "ep_01AAAAAAAAAAAAAAAAAAAAAAAA", "evt": "evt_01AAAAAAAAAAAAAAAAAAAAAAAA",
               "dlv": "dlv_01AAAAAAAAAAAAAAAAAAAAAAAA"}  # fmt: skip


@pytest.fixture
def world(event_types, partner, other_partner):
    """Each partner with an endpoint, an event of its own and a failed delivery."""
    objects = {}
    for owner in (partner, other_partner):
        endpoint = make_endpoint(owner, url="http://127.0.0.1:9/hook")
        event = publish("order.paid", {"owner": owner.name}, partner=owner)
        delivery = Delivery.objects.get(event=event)
        Delivery.objects.filter(pk=delivery.pk).update(status="dead", next_attempt_at=None)
        objects[owner.pk] = {"ep": endpoint.public_id, "evt": event.public_id,
                             "dlv": delivery.public_id}  # fmt: skip
    return objects


def snapshot(ids):
    endpoint = Endpoint.objects.get(public_id=ids["ep"])
    delivery = Delivery.objects.get(public_id=ids["dlv"])
    return (endpoint.name, endpoint.enabled, endpoint.signing_secret, endpoint.auth_token,
            endpoint.public_key, endpoint.signature_scheme, endpoint.verified_at,
            endpoint.verification_sent_at, endpoint.verification_challenge_hash,
            delivery.status, delivery.attempt_count, delivery.next_attempt_at)  # fmt: skip


@pytest.mark.parametrize(("method", "template", "body"), OBJECT_ROUTES)
@pytest.mark.parametrize("direction", ["acme->globex", "globex->acme"])
def test_another_partners_object_is_a_404_like_a_missing_one(
    world, partner, other_partner, partner_api, other_api, method, template, body, direction
):
    api, victim = (
        (partner_api, other_partner) if direction == "acme->globex" else (other_api, partner)
    )
    ids = world[victim.pk]
    before = snapshot(ids)
    kwargs = {"format": "json"} if body is not None else {}
    args = (body,) if body is not None else ()
    theirs = getattr(api, method)(template.format(**ids), *args, **kwargs)
    missing = getattr(api, method)(template.format(**NONEXISTENT), *args, **kwargs)
    assert theirs.status_code == 404, theirs.content
    assert theirs.json() == missing.json()
    assert snapshot(ids) == before


@pytest.mark.parametrize(
    ("path", "key"),
    [("/api/v1/endpoints/", "ep"), ("/api/v1/events/", "evt"), ("/api/v1/deliveries/", "dlv")],
)
def test_lists_show_only_own_objects(
    world, partner, other_partner, partner_api, other_api, path, key
):
    for api, owner in ((partner_api, partner), (other_api, other_partner)):
        shown = [row["id"] for row in api.get(path).json()["results"]]
        assert shown == [world[owner.pk][key]]


@pytest.mark.parametrize(
    ("path", "param", "key"),
    [("/api/v1/deliveries/", "endpoint", "ep"), ("/api/v1/deliveries/", "event", "evt")],
)
def test_filtering_by_another_partners_id_finds_nothing(
    world, other_partner, partner_api, path, param, key
):
    response = partner_api.get(path, {param: world[other_partner.pk][key]})
    assert response.status_code == 200 and response.json()["results"] == []


def test_replay_to_another_partners_endpoint_is_refused_like_an_unknown_one(
    world, partner, other_partner, partner_api
):
    own_event = world[partner.pk]["evt"]
    theirs = partner_api.post(
        f"/api/v1/events/{own_event}/replay/",
        {"endpoint": world[other_partner.pk]["ep"]},
        format="json",
    )
    assert theirs.status_code == 400 and list(theirs.json()["errors"]) == ["endpoint"]
    assert not Delivery.objects.filter(
        endpoint__public_id=world[other_partner.pk]["ep"], event__public_id=own_event
    ).exists()


def test_a_broadcast_is_visible_to_the_partners_it_reached_and_replays_only_to_them(
    event_types, partner, other_partner, partner_api, other_api
):
    mine = make_endpoint(partner)
    theirs = make_endpoint(other_partner)
    event = publish("order.paid", {"all": True})
    detail = partner_api.get(f"/api/v1/events/{event.public_id}/").json()
    assert detail["deliveries_count"] == 1
    assert [d["endpoint"] for d in detail["deliveries"]] == [mine.public_id]
    before = Delivery.objects.get(event=event, endpoint=theirs).updated_at
    replay = partner_api.post(f"/api/v1/events/{event.public_id}/replay/", {}, format="json")
    assert replay.json() == {"queued": 1}
    assert Delivery.objects.get(event=event, endpoint=theirs).updated_at == before
    subscriptions_set(theirs, ["shipment.moved"])
    quiet = publish("order.paid", {"all": True})  # reached only Acme
    assert other_api.get(f"/api/v1/events/{quiet.public_id}/").status_code == 404
    # Switched off is not "not reached": the broadcast waits for Globex, held.
    endpoint_disable(theirs, by="admin:sam", reason="off")
    subscriptions_set(theirs, ["*"])
    held = publish("order.paid", {"all": True})
    seen = other_api.get(f"/api/v1/deliveries/?event={held.public_id}").json()["results"]
    assert [d["reason"]["code"] for d in seen] == ["held_endpoint_off"]


@pytest.mark.parametrize(("method", "template", "body"), PUBLISHER_ROUTES)
def test_a_partner_token_is_refused_publisher_routes_whatever_the_id(
    world, partner, other_partner, partner_api, method, template, body
):
    answers = [
        getattr(partner_api, method)(template.format(**ids))
        for ids in (world[partner.pk], world[other_partner.pk], NONEXISTENT)
    ]
    assert {a.status_code for a in answers} == {403}
    assert len({a.content for a in answers}) == 1
    assert not Event.objects.filter(expunged_at__isnull=False).exists()


def test_publisher_may_not_use_partner_routes(world, partner, publisher_api):
    ids = world[partner.pk]
    for path in ("/api/v1/endpoints/", f"/api/v1/endpoints/{ids['ep']}/",
                 "/api/v1/deliveries/", f"/api/v1/deliveries/{ids['dlv']}/"):  # fmt: skip
        response = publisher_api.get(path)
        assert response.status_code == 403 and response.json()["detail"] == (
            "This needs a partner token."
        )


def test_matrix_covers_every_object_route():
    """Every /api/v1/ route with an object id is in OBJECT_ROUTES (event types, a
    catalog shared by everyone, have no owner)."""
    from webhookhub.api.urls import router

    with_id = {route.name for route in router.urls if "(?P<id>" in str(route.pattern)}
    covered = {
        resolve(template.format(**NONEXISTENT)).url_name
        for _, template, _ in OBJECT_ROUTES + PUBLISHER_ROUTES
    }
    assert with_id == covered
