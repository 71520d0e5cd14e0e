"""Support registers an endpoint through the real form in Chromium at 1366 px: the
script's rows and the live retry preview, no horizontal scrolling, the saved rows."""

from endpoints.models import Endpoint
from events.services import publish
from tests.admin.conftest import support_member
from tests.e2e.conftest import BROWSER_TEST, ROOT, fits
from tests.factories import PartnerFactory

pytestmark = BROWSER_TEST


def test_support_registers_an_endpoint_with_the_structured_form_in_a_browser(
    live_server, page, event_types
):
    support_member(password="support-pass-123")
    partner = PartnerFactory(name="Acme Shop")
    publish("order.paid", {"amount": 50}, partner=partner)
    publish("shipment.moved", {"amount": 150}, partner=partner)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/endpoints/endpoint/add/")
    page.fill("#id_username", "sam")
    page.fill("#id_password", "support-pass-123")
    page.click("input[type=submit]")
    page.wait_for_selector("#endpoint_form")
    fits(page)

    page.select_option("#id_partner", str(partner.pk))
    page.fill("#id_name", "Acme orders")
    page.fill("#id_url", "https://hooks.acme.example/webhooks")

    # Retry: linear, and the preview follows what is typed.
    assert page.is_hidden("#id_retry_policy__base_delay")  # the default has no settings
    page.select_option("#id_retry_policy", "linear")
    page.fill("#id_retry_policy__max_attempts", "4")
    page.fill("#id_retry_policy__base_delay", "60")
    page.fill("#id_retry_policy__max_delay", "3600")
    page.fill("#id_retry_policy__jitter", "0")
    page.wait_for_selector(".wh-schedule[data-attempts='4']")
    waits = page.eval_on_selector_all(
        ".wh-schedule tbody tr", "rows => rows.map(r => Number(r.dataset.wait))"
    )
    assert waits == [60, 120, 180]
    assert "3 min" in page.inner_text(".wh-retry .wh-preview")
    assert page.is_hidden("#id_retry_policy__schedule")

    # A header: one row typed, one added and removed again.
    headers = page.locator(".wh-headers")
    headers.locator("input[name='headers__name_0']").fill("X-Partner-Key")
    headers.locator("input[name='headers__value_0']").fill("pk-0123456789abcdef")
    headers.locator(".wh-add").click()
    assert headers.locator("tbody tr").count() == 2
    headers.locator("tbody tr").last.locator(".wh-remove").click()
    assert headers.locator("tbody tr").count() == 1

    # Two event types from the catalog.
    page.check("input[name='event_types__pick'][value='order.paid']")
    page.check("input[name='event_types__pick'][value='shipment.moved']")

    # The filter: data.amount gte 100, with a second row added and taken away.
    conditions = page.locator(".wh-filter")
    conditions.locator("input[name='filter__path_0']").fill("data.amount")
    conditions.locator("select[name='filter__op_0']").select_option("gte")
    conditions.locator("input[name='filter__value_0']").fill("100")
    conditions.locator(".wh-add").click()
    assert conditions.locator("tbody tr").count() == 2
    conditions.locator("tbody tr").last.locator("input[name='filter__path_1']").fill("data.x")
    conditions.locator("tbody tr").last.locator(".wh-remove").click()
    assert conditions.locator("tbody tr").count() == 1
    # The preview runs the engine's filter over recent events, on the form as it stands.
    with page.expect_popup() as opened:
        conditions.locator(".wh-filter-preview").click()
    preview = opened.value
    preview.wait_for_selector("#preview-summary")
    assert "1 of 2 would be delivered" in preview.inner_text("#preview-summary")
    preview.close()

    # The token: the partner's own.
    page.check("input[name='token_action'][value='set']")
    page.fill("#id_token_value", "partner-given-token-0042")

    fits(page)
    page.screenshot(path=str(ROOT / "var" / "endpoint-form-1366.png"), full_page=True)
    page.click("input[name='_save']")

    secret = page.input_value("#secret-value")
    endpoint = Endpoint.objects.get(name="Acme orders")
    assert secret == endpoint.signing_secret
    assert endpoint.partner == partner
    assert endpoint.url == "https://hooks.acme.example/webhooks"
    assert endpoint.retry_policy == {
        "strategy": "linear",
        "max_attempts": 4,
        "base_delay": 60,
        "max_delay": 3600,
        "jitter": 0,
    }
    assert endpoint.headers == {"X-Partner-Key": "pk-0123456789abcdef"}
    assert endpoint.filter == {"path": "data.amount", "op": "gte", "value": 100}
    assert endpoint.auth_token == "partner-given-token-0042"
    assert list(endpoint.subscriptions.values_list("event_type", "filter")) == [
        ("order.paid", None),
        ("shipment.moved", None),
    ]

    # The change page shows it back, masked, and still fits.
    page.goto(f"{live_server.url}/admin/endpoints/endpoint/{endpoint.pk}/change/")
    assert page.input_value("input[name='headers__value_0']") == "••••cdef"
    assert page.is_checked("input[name='event_types__pick'][value='shipment.moved']")
    assert "3 min" in page.inner_text(".wh-retry .wh-preview")
    assert page.input_value("#id_retry_policy") == "linear"
    assert page.input_value("#id_retry_policy__base_delay") == "60"
    assert not page.is_checked("input[name='retry_policy__mode'][value='json']")
    fits(page)

    # A protected header name is refused on the headers field; nothing changes.
    page.fill("input[name='headers__name_0']", "Authorization")
    page.click("input[name='_save']")
    error = page.inner_text(".field-headers .errorlist")
    assert "Authorization is set by webhookhub" in error
    assert page.input_value("input[name='headers__name_0']") == "Authorization"
    fits(page)
    page.screenshot(path=str(ROOT / "var" / "endpoint-form-error-1366.png"), full_page=True)
    endpoint.refresh_from_db()
    assert endpoint.headers == {"X-Partner-Key": "pk-0123456789abcdef"}
