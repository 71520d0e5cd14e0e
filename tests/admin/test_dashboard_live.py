"""The dashboard's figures: what waits and why, dead letters by time of death, every
endpoint in trouble, and the live JSON the page polls (real database, real engine)."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.cache import caches
from django.urls import reverse
from django.utils import timezone

from deliveries import engine
from deliveries.dashboard import LIVE_SLOTS, STEP, compute_dashboard, compute_live
from deliveries.models import CircuitState, Delivery, DeliveryStatus, EndpointHealth
from endpoints.models import Endpoint
from endpoints.services import endpoint_disable
from events.models import Event
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)

LIVE = "admin:dashboard_live"


def deliver(event):
    engine.deliver(list(event.deliveries.values_list("pk", flat=True)))


@pytest.fixture
def troubles(event_types, receiver, settings):
    """One endpoint per reason to wait, each with deliveries in that state, made by the
    real engine where it can make them."""
    settings.WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD = 2
    answers = {"/broken": 500, "/gone": 410, "/ordered": 503, "/flaky": 500}
    receiver.respond_with(lambda r: Response(answers.get(r.path, 200), b"nope"))
    partner = PartnerFactory(name="Acme")

    def endpoint(name, **fields):
        return make_endpoint(
            partner, name=name, url=receiver.url_for(f"/{name}"), event_types=["order.*"], **fields
        )

    eps = {
        "healthy": endpoint("healthy"),
        "broken": endpoint("broken"),
        "gone": endpoint("gone"),
        "off": endpoint("off"),
        "ordered": endpoint("ordered", ordered=True),
        "paced": endpoint("paced", rate_limit_per_second=1),
        "flaky": endpoint("flaky"),
    }

    def send(name, n=1, *, now=False):
        events = [publish("order.paid", {"n": i}, partner=None) for i in range(n)]
        target = eps[name]
        rows = Delivery.objects.filter(event__in=events)
        rows.exclude(endpoint=target).delete()  # one endpoint at a time
        if now:
            engine.deliver(list(rows.values_list("pk", flat=True)))
        return rows

    send("healthy", 3, now=True)  # 3 succeeded
    send("healthy", 2)  # 2 due, not sent
    send("broken", 2, now=True)  # two failures: the circuit opens
    send("broken", 1)  # due, but behind the open circuit
    send("gone", 3, now=True)  # 410: switched off by itself; the 3 wait behind the switch
    send("off", 4)  # held while it is off (switched off by people: not failing)
    endpoint_disable(eps["off"], by="admin:sam", reason="partner maintenance")
    send("ordered", 3, now=True)  # the head failed; the two behind it are held
    # Due for a while at a rate-limited endpoint: what the rate limit holds back.
    send("paced", 3).update(next_attempt_at=timezone.now() - timedelta(seconds=5))
    send("flaky", 1, now=True)  # one failure: a retry in 5 s, circuit still closed
    for ep in eps.values():
        ep.refresh_from_db()
    return eps


def test_waiting_deliveries_are_counted_by_the_reason_they_wait(troubles):
    assert EndpointHealth.objects.get(pk=troubles["broken"].pk).circuit_state == CircuitState.OPEN
    assert troubles["gone"].disabled_kind == Endpoint.DisabledBy.GONE
    waiting = compute_live(timezone.now())["waiting"]
    assert waiting["exact"]
    assert waiting["reasons"] == {
        "circuit_open": 3,  # 2 retrying later, 1 due
        "endpoint_off": 3 + 4,  # gone (3 retrying) and switched off (4 pending)
        "ordered": 2,
        "rate_limited": 3,
        "due": 2,
        "later": 1 + 1,  # the flaky endpoint's retry, the ordered queue's head
    }
    assert waiting["total"] == sum(waiting["reasons"].values())
    assert waiting["endpoints"]["circuit_open"] == [troubles["broken"].pk]
    assert waiting["endpoints"]["endpoint_off"] == sorted([troubles["gone"].pk, troubles["off"].pk])


def test_each_waiting_figure_links_to_the_deliveries_it_counts(admin_client, troubles):
    data = admin_client.get(reverse(LIVE)).json()
    changelist = reverse("admin:deliveries_delivery_changelist")
    for reason, count in data["waiting"]["reasons"].items():
        link = data["waiting"]["links"][reason]
        assert link.startswith(changelist + "?")
        page = admin_client.get(link)
        assert page.status_code == 200, (reason, link)
        shown = page.content.decode().count('name="_selected_action"')
        assert shown >= count, (reason, link)
    held = admin_client.get(data["waiting"]["links"]["ordered"]).content.decode()
    assert held.count('name="_selected_action"') == 2
    off = admin_client.get(data["waiting"]["links"]["endpoint_off"]).content.decode()
    assert off.count('name="_selected_action"') == 7


def test_live_json_has_the_last_hour_in_10_second_slots(admin_client, troubles):
    data = admin_client.get(reverse(LIVE)).json()
    series = data["series"]
    assert data["step_seconds"] == STEP == 10
    assert {len(v) for v in series.values()} == {LIVE_SLOTS} == {360}
    assert all(b - a == STEP for a, b in zip(series["t"], series["t"][1:], strict=False))
    now = timezone.now().timestamp()
    assert series["t"][-1] <= now < series["t"][-1] + STEP
    attempts = Delivery.objects.filter(attempt_count__gt=0)
    ok = Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count()
    assert data["hour"]["attempts_ok"] == ok == 3
    assert data["hour"]["attempts_failed"] == attempts.count() - ok
    assert data["hour"]["events"] == Event.objects.count()
    assert data["hour"]["success_rate"] == round(100 * ok / attempts.count(), 1)
    assert data["hour"]["p50_ms"] is not None and data["hour"]["p95_ms"] >= data["hour"]["p50_ms"]
    assert sum(series["ok"]) > 0 and sum(series["events"]) > 0
    busy = [i for i, v in enumerate(series["success_rate"]) if v is not None]
    assert busy and all(0 <= series["success_rate"][i] <= 100 for i in busy)
    assert all(series["p50_ms"][i] is not None for i in busy)
    due = Delivery.objects.filter(
        status__in=("pending", "retrying"), next_attempt_at__lte=timezone.now()
    ).count()
    assert data["backlog"] == {"count": due, "exact": True}
    assert data["backlog_age_seconds"] >= 0
    assert data["in_flight"] == {"count": 0, "exact": True}
    assert data["open_circuits"] == 1
    assert "endpoints" not in data["waiting"]  # ids stay on the server: links instead


def test_live_json_is_computed_at_most_every_two_seconds(admin_client, event_types):
    url = reverse(LIVE)
    first = admin_client.get(url).json()
    make_endpoint()
    publish("order.paid", {"n": 1})
    assert admin_client.get(url).json()["computed_at"] == first["computed_at"]
    with time_machine.travel(timezone.now() + timedelta(seconds=3)):
        later = admin_client.get(url).json()
    assert later["computed_at"] != first["computed_at"]
    assert later["hour"]["events"] == first["hour"]["events"] + 1


def test_live_json_query_count_does_not_grow_with_the_data(admin_client, troubles, event_types):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    counts = []
    for _ in range(2):
        caches["shared"].clear()
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(reverse(LIVE)).status_code == 200
        counts.append(len(queries))
        for n in range(5):
            publish("order.paid", {"more": n})
    assert counts[0] == counts[1] <= 12


def test_dead_letters_are_counted_by_time_of_death(event_types):
    endpoint = make_endpoint()
    now = timezone.now()
    old, recent = (publish("order.paid", {"n": n}).deliveries.get() for n in range(2))
    # Created 3 days ago, died an hour ago: a dead letter of the last 24 h.
    Delivery.objects.filter(pk=old.pk).update(
        status=DeliveryStatus.DEAD, created_at=now - timedelta(days=3),
        completed_at=now - timedelta(hours=1),
    )  # fmt: skip
    # Created now, but died 2 days ago (clock aside: the window counts deaths).
    Delivery.objects.filter(pk=recent.pk).update(
        status=DeliveryStatus.DEAD, completed_at=now - timedelta(days=2)
    )
    day, week = compute_dashboard(now).windows
    assert (day.label, day.dead) == ("24h", 1)
    assert (week.label, week.dead) == ("7d", 2)
    assert endpoint.pk


def test_failing_endpoints_lists_every_endpoint_in_trouble(admin_client, troubles):
    data = compute_dashboard(timezone.now())
    names = [e.name for e in data.failing]
    assert set(names) == {"broken", "gone", "ordered", "flaky"}
    assert names[0] == "gone"  # switched off by itself: the worst
    assert "off" not in names and "healthy" not in names  # switched off by people
    assert data.failing_total == 4
    page = admin_client.get(reverse("admin:index")).content.decode()
    link = (
        f"{reverse('admin:deliveries_delivery_changelist')}?endpoint__id__exact="
        f"{troubles['gone'].pk}&amp;status__in=pending%2Cretrying%2Cin_flight%2Cdead"
    )
    assert link in page
    gone = admin_client.get(link.replace("&amp;", "&")).content.decode()
    assert gone.count('name="_selected_action"') == 3  # retrying behind the switch
    assert "410" in page


def test_dashboard_page_shows_the_live_figures_full_width(admin_client, troubles):
    page = admin_client.get(reverse("admin:index")).content.decode()
    for marker in (
        'id="dashboard-live"',
        'id="dashboard-labels"',
        "webhookhub/dashboard.js",
        "webhookhub/dashboard.css",
        'id="waiting-circuit_open">3<',
        'id="waiting-endpoint_off">7<',
        'id="live-open-circuits"',
        'id="chart-throughput"',
        'id="failing-endpoints"',
    ):
        assert marker in page, marker
    assert "View site" not in page  # nothing is served at "/"


def test_dashboard_static_files_are_found():
    from django.contrib.staticfiles import finders

    for name in ("webhookhub/dashboard.js", "webhookhub/dashboard.css"):
        assert finders.find(name), name


def test_live_json_needs_an_admin_login(client):
    response = client.get(reverse(LIVE))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_live_json_needs_the_view_delivery_permission(client, viewer_user):
    nobody = User.objects.create_user("nora", password="pw-for-tests", is_staff=True)
    client.force_login(nobody)
    assert client.get(reverse(LIVE)).status_code == 403
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="dashboard"' not in page
    client.force_login(viewer_user)
    response = client.get(reverse(LIVE))
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]


def test_empty_database_gives_an_empty_but_complete_live_json(admin_client):
    data = admin_client.get(reverse(LIVE)).json()
    assert data["hour"]["events"] == 0 and data["hour"]["success_rate"] is None
    assert data["hour"]["p50_ms"] is None
    assert set(data["series"]["success_rate"]) == {None}
    assert data["backlog"]["count"] == 0 and data["backlog_age_seconds"] is None
    assert data["waiting"]["total"] == 0
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "No attempts in the last 24 hours." in page


def test_every_link_on_the_dashboard_opens_its_list(admin_client, troubles):
    import html
    import re

    page = admin_client.get(reverse("admin:index")).content.decode()
    section = page[page.index('id="dashboard"') : page.index('id="dashboard-live"')]
    links = {html.unescape(href) for href in re.findall(r'href="(/admin/[^"]+)"', section)}
    assert len(links) > 15
    for link in sorted(links):
        assert admin_client.get(link).status_code == 200, link
    data = admin_client.get(reverse(LIVE)).json()
    for name in ("backlog", "in_flight", "open_circuits"):
        assert admin_client.get(data["links"][name]).status_code == 200, name
    circuits = admin_client.get(data["links"]["open_circuits"]).content.decode()
    assert "broken" in circuits and "healthy" not in circuits
