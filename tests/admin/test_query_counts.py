"""Admin pages issue a bounded number of queries, whatever the page size (no N+1)."""

import pytest
from django.contrib.auth.models import Group
from django.db import transaction
from django.urls import reverse

from deliveries import engine
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint

pytestmark = pytest.mark.django_db


def test_migration_creates_the_support_group_with_support_permissions():
    codenames = set(
        Group.objects.get(name="Support").permissions.values_list("codename", flat=True)
    )
    assert {
        "toggle_endpoint",
        "rotate_credentials",
        "send_test_event",
        "replay_delivery",
    } <= codenames
    assert {"view_endpoint", "view_delivery", "view_event"} <= codenames
    # Support registers, edits and deletes endpoints and their subscriptions (endpoints
    # 0005), and nothing else.
    edits = {
        f"{verb}_{model}"
        for verb in ("add", "change", "delete")
        for model in ("endpoint", "subscription")
    }
    assert {c for c in codenames if c.startswith(("add_", "change_", "delete_"))} == edits
    assert not {c for c in codenames if c.endswith(("_user", "_group", "_permission"))}


def populate(rows: int, receiver):
    partner = PartnerFactory(name=f"P{rows}")
    endpoints = [
        make_endpoint(
            partner,
            name=f"ep{rows}-{i}",
            url=receiver.url_for(f"/{i}"),
            event_types=["order.*", "shipment.moved"],
        )
        for i in range(rows)
    ]
    with transaction.atomic():
        events = [publish("order.paid", {"n": n}, partner=partner) for n in range(rows)]
    ids = [d for e in events for d in e.deliveries.values_list("pk", flat=True)]
    engine.deliver(ids[:32])
    return endpoints, events


PAGES = [
    ("admin:index", None),
    ("admin:endpoints_endpoint_changelist", None),
    ("admin:endpoints_partner_changelist", None),
    ("admin:events_event_changelist", None),
    ("admin:deliveries_delivery_changelist", None),
    ("admin:deliveries_delivery_changelist", {"status__exact": "succeeded"}),
    ("admin:events_eventtype_changelist", None),
    ("admin:endpoints_apitoken_changelist", None),
]


@pytest.mark.parametrize(("name", "params"), PAGES)
def test_changelists_and_dashboard_have_constant_query_counts(
    admin_client, event_types, receiver, name, params, django_assert_max_num_queries
):
    from django.core.cache import caches

    cache = caches["shared"]
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    url = reverse(name)
    counts = []
    for rows in (2, 12):
        populate(rows, receiver)
        cache.clear()  # the dashboard caches its figures: count the real work
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(url, params or {})
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1], (
        f"{url}: {counts[0]} queries with few rows, {counts[1]} with more"
    )
    with django_assert_max_num_queries(24):
        cache.clear()
        admin_client.get(url, params or {})


def test_change_pages_have_bounded_query_counts(
    admin_client, event_types, receiver, django_assert_max_num_queries
):
    endpoints, events = populate(5, receiver)
    delivery = events[0].deliveries.first()
    for url in (
        reverse("admin:endpoints_endpoint_change", args=[endpoints[0].pk]),
        reverse("admin:events_event_change", args=[events[0].pk]),
        reverse("admin:deliveries_delivery_change", args=[delivery.pk]),
        reverse("admin:endpoints_partner_change", args=[endpoints[0].partner_id]),
    ):
        with django_assert_max_num_queries(20):
            assert admin_client.get(url).status_code == 200


def test_partner_page_query_count_does_not_grow_with_its_endpoints(admin_client, event_types):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tests.factories import PartnerFactory, make_endpoint

    partner = PartnerFactory()
    url = reverse("admin:endpoints_partner_change", args=[partner.pk])

    def queries_with(total: int) -> int:
        while partner.endpoints.count() < total:
            make_endpoint(partner, name=f"e{partner.endpoints.count()}")
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200
        return len(queries)

    admin_client.get(url)  # warm: session, content types
    assert queries_with(2) == queries_with(8)
