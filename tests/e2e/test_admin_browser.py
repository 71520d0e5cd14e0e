"""The support job in a real browser (Debian's Chromium driven by Playwright), against
a live server, a running qcluster and a real receiver."""

import os
import re

import pytest

from deliveries import engine
from deliveries.models import Delivery, DeliveryStatus
from events.services import publish
from tests.e2e.conftest import BROWSER_TEST, CHROMIUM, ROOT, wait_until
from tests.factories import PartnerFactory, make_endpoint
from tests.receiver import Response

pytestmark = BROWSER_TEST
SCREENSHOTS = ROOT / "docs" / "screenshots"


@pytest.fixture
def browser_page():
    # Playwright's sync API runs an event loop in this thread; the Django ORM calls the
    # test makes between browser steps are still plain synchronous calls.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(15_000)
        yield page
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_support_user_does_the_support_job_in_a_browser(
    live_server, browser_page, event_types, receiver, start_cluster, settings
):
    from tests.admin.conftest import ensure_permissions

    ensure_permissions()
    from importlib import import_module

    from django.contrib.auth.models import Group, Permission, User

    migration = import_module("deliveries.migrations.0002_support_group_and_system_event_types")
    group, _ = Group.objects.get_or_create(name="Support")
    group.permissions.set(
        Permission.objects.get(content_type__app_label=a, codename=c)
        for a, c in migration.SUPPORT_PERMISSIONS
    )
    user = User.objects.create_user("sam", password="support-pass-123", is_staff=True)
    user.groups.add(group)

    partner = PartnerFactory(name="Acme Shop", contact_email="ops@acme.example")
    healthy = make_endpoint(partner, name="Acme orders", url=receiver.url_for("/orders"))
    broken = make_endpoint(
        partner,
        name="Acme warehouse",
        url=receiver.url_for("/warehouse"),
        retry_policy={"max_attempts": 1},
    )
    state = {"warehouse_down": True}
    receiver.respond_with(
        lambda r: (
            Response(503, b'{"error": "warehouse database unavailable"}')
            if r.path == "/warehouse" and state["warehouse_down"]
            else Response(200, b"ok")
        )
    )
    for n in range(6):  # 6 dead deliveries open the warehouse circuit
        event = publish("order.paid", {"order": {"id": 1000 + n, "amount": 4999}}, partner=partner)
        engine.deliver(list(event.deliveries.values_list("pk", flat=True)))
    dead = (
        Delivery.objects.filter(endpoint=broken, status=DeliveryStatus.DEAD).order_by("pk").first()
    )
    assert dead is not None
    start_cluster()

    page = browser_page
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "support-pass-123")
    page.click("input[type=submit]")

    # 1. The dashboard shows the failing endpoint with its last error.
    page.wait_for_selector("#failing-endpoints")
    assert "warehouse database unavailable" in page.inner_text("#failing-endpoints")
    page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    page.click("#failing-endpoints >> text=Acme warehouse")

    # 2. The endpoint page; read why an attempt failed from its deliveries.
    page.wait_for_selector("#action-disable")
    page.screenshot(path=str(SCREENSHOTS / "endpoint.png"), full_page=True)
    page.click("#action-deliveries")
    page.wait_for_selector("#result_list")
    page.click(f"#result_list [title='{dead.public_id}']")
    page.wait_for_selector("text=HTTP 503")
    assert "warehouse database unavailable" in page.content()
    assert "curl -X POST" in page.inner_text("#curl-command")
    page.screenshot(path=str(SCREENSHOTS / "delivery.png"), full_page=True)

    # 3. Switch it off with a reason, then on again.
    page.goto(f"{live_server.url}/admin/endpoints/endpoint/{broken.pk}/change/")
    page.click("#action-disable")
    page.fill("#id_reason", "warehouse team is migrating")
    page.click("input[value='Switch off']")
    page.wait_for_selector("text=is off")
    broken.refresh_from_db()
    assert not broken.enabled and broken.disabled_by == "admin:sam"
    page.click("#action-enable")  # switching on asks first
    page.fill("#id_reason", "migration finished")
    page.click("#confirm-submit")
    page.wait_for_selector("text=is on")
    broken.refresh_from_db()
    assert broken.enabled

    # 4. Rotate its secret: shown once.
    page.click("#action-rotate")
    page.click("input[value='Rotate secret']")
    secret = page.input_value("#secret-value")
    broken.refresh_from_db()
    assert secret == broken.signing_secret and secret.startswith("whsec_")
    page.goto(f"{live_server.url}/admin/shown-once/")
    assert secret not in page.content()

    # 5. Send a test event and see the result (the receiver is still failing).
    page.goto(f"{live_server.url}/admin/endpoints/endpoint/{broken.pk}/send-test/")
    # A worker sends it; the page waits briefly, then refreshes itself until it is in.
    page.click("input[value='Send test event']")
    page.wait_for_selector("#test-result.error", timeout=20_000)
    assert "HTTP 503" in page.inner_text("#test-result")

    # 6. The warehouse is fixed: replay the dead delivery and watch it succeed.
    state["warehouse_down"] = False
    page.goto(f"{live_server.url}/admin/deliveries/delivery/?status__exact=dead")
    row = page.locator("tr", has=page.locator(f"[title='{dead.public_id}']"))
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", "retry_now")
    page.click("button[name=index]")
    page.click("input[value='Yes, retry now']")
    page.wait_for_selector("text=Queued 1 of 1")
    wait_until(
        lambda: Delivery.objects.get(pk=dead.pk).status == DeliveryStatus.SUCCEEDED,
        timeout=30,
        message="replayed delivery succeeded",
    )
    page.goto(f"{live_server.url}/admin/deliveries/delivery/{dead.pk}/change/")
    text = page.inner_text("#content")
    assert "Succeeded" in text and "admin:sam" in text
    assert re.search(r"Retried by hand", text)
    assert healthy.deliveries.filter(status=DeliveryStatus.SUCCEEDED).count() == 6
