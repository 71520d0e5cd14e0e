"""Support finds out *why* in a real browser (Chromium at 1366 px, live server, a real
qcluster, a real receiver): why an event did not reach a filtered endpoint, why a
delivery waits behind an open circuit; probes it; switches an endpoint off with a reason
and finds that in the audit trail by user and reason. No list scrolls sideways."""

import re

from django.conf import settings

from audit.models import Action, AuditEntry
from deliveries.models import CircuitState, Delivery, DeliveryStatus, EndpointHealth
from events.services import publish
from tests.admin.conftest import support_member
from tests.e2e.conftest import BROWSER_TEST, ROOT, fits, wait_until
from tests.factories import PartnerFactory, make_endpoint
from tests.receiver import Response

pytestmark = BROWSER_TEST
SCREENSHOTS = ROOT / "docs" / "screenshots"


def test_support_finds_out_why_probes_and_leaves_a_trail(
    live_server, page, event_types, receiver, start_cluster
):
    support_member(password="support-pass-123")
    partner = PartnerFactory(name="Acme Shop", contact_email="ops@acme.example")
    make_endpoint(partner, name="Acme all orders", url=receiver.url_for("/all"))
    make_endpoint(
        partner,
        name="Acme big orders",
        url=receiver.url_for("/big"),
        filter={"path": "data.amount", "op": "gte", "value": 100},
    )
    warehouse = make_endpoint(
        partner,
        name="Acme warehouse with a rather long name",
        url=receiver.url_for("/warehouse/a/rather/long/path/for/the/list?tenant=acme-shop"),
    )
    down = {"warehouse": True}
    receiver.respond_with(
        lambda r: (
            Response(503, b'{"error": "warehouse database unavailable"}')
            if r.path.startswith("/warehouse") and down["warehouse"]
            else Response(200, b"ok")
        )
    )
    start_cluster()
    small = publish("order.paid", {"amount": 50}, partner=partner)
    threshold = settings.WEBHOOKHUB_CIRCUIT_FAILURE_THRESHOLD
    for n in range(threshold):
        publish("order.paid", {"amount": 500 + n}, partner=partner)
    wait_until(
        lambda: EndpointHealth.objects.get(pk=warehouse.pk).circuit_state == CircuitState.OPEN,
        timeout=60,
        message="the warehouse circuit opens",
    )
    behind = publish("order.paid", {"amount": 999}, partner=partner)
    waiting = Delivery.objects.get(event=behind, endpoint=warehouse)

    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "support-pass-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#content")

    # 1. Did "Acme big orders" get the small order? The event page says why not.
    page.goto(f"{live_server.url}/admin/events/event/{small.pk}/change/")
    route = page.locator("#event-routing tr", has_text="Acme big orders")
    assert "data.amount gte 100 — found 50" in route.inner_text()
    assert "Succeeded" in page.locator("#event-routing tr", has_text="Acme all orders").inner_text()
    fits(page)
    page.screenshot(path=str(SCREENSHOTS / "event-routing.png"), full_page=True)

    # 2. Why does the warehouse delivery wait? The list says it short, the page in full.
    page.goto(f"{live_server.url}/admin/deliveries/delivery/?status__exact=pending")
    row = page.locator("#result_list tr", has=page.locator(f"[title='{waiting.public_id}']"))
    assert "waiting: circuit open" in row.inner_text()
    fits(page)
    page.screenshot(path=str(SCREENSHOTS / "deliveries.png"), full_page=True)
    row.locator(f"[title='{waiting.public_id}']").click()
    why = page.inner_text("#delivery-why")
    assert "circuit is open since" in why and re.search(r"after \d+ failures in a row", why)
    assert "HTTP 503" in why and "warehouse database unavailable" in why
    fits(page)

    # 3. The receiver is fixed: probe now from the endpoint page; the delivery goes.
    down["warehouse"] = False
    page.goto(f"{live_server.url}/admin/endpoints/endpoint/{warehouse.pk}/change/")
    fits(page)
    page.screenshot(path=str(SCREENSHOTS / "endpoint-circuit-open.png"), full_page=True)
    page.click("#action-probe")
    assert "failures in a row" in page.inner_text("#circuit-state")
    page.fill("#id_reason", "warehouse team fixed their database")
    page.click("#confirm-submit")
    page.wait_for_selector("text=Probing")
    wait_until(
        lambda: Delivery.objects.get(pk=waiting.pk).status == DeliveryStatus.SUCCEEDED,
        timeout=30,
        message="the probe went and the delivery behind it succeeded",
    )
    assert EndpointHealth.objects.get(pk=warehouse.pk).circuit_state == CircuitState.CLOSED

    # 4. The endpoints list fits and says each one's state; switch one off with a reason.
    page.goto(f"{live_server.url}/admin/endpoints/endpoint/")
    fits(page)
    page.screenshot(path=str(SCREENSHOTS / "endpoints.png"), full_page=True)
    page.click(f"#toggle-{warehouse.public_id}")  # asks for the reason first
    page.fill("#id_reason", "partner asked for a pause")
    page.click("#confirm-submit")
    page.wait_for_selector("text=is off")
    warehouse.refresh_from_db()
    assert not warehouse.enabled and warehouse.disabled_reason == "partner asked for a pause"
    page.goto(f"{live_server.url}/admin/endpoints/endpoint/")
    state = page.locator("#result_list tr", has_text="Acme warehouse").locator(".wh-state")
    assert "off: by admin:sam" in state.inner_text()

    # 5. The audit trail, filtered by the user, has both actions with their reasons.
    page.goto(f"{live_server.url}/admin/audit/auditentry/?q=admin:sam")
    fits(page)
    trail = page.inner_text("#result_list")
    assert "partner asked for a pause" in trail
    assert "warehouse team fixed their database" in trail
    page.screenshot(path=str(SCREENSHOTS / "audit.png"), full_page=True)
    assert AuditEntry.objects.filter(
        actor="admin:sam", action=Action.ENDPOINT_DISABLED, reason="partner asked for a pause"
    ).exists()
    # …and "Recent actions" on the home page lists them (Django's admin log).
    page.goto(f"{live_server.url}/admin/")
    assert "Acme warehouse with a rather long name" in page.inner_text("#recent-actions-module")
