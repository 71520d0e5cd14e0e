"""The partner's journey through the portal in a real browser (Debian's Chromium driven
by Playwright), in English and in Korean, against a live server, a running qcluster
and a real receiver: sign-in link → register a webhook with a generated token → test
event arrives signed and with the token → off / on → a failing endpoint's deliveries
in the log with the receiver's answer → retry one → rotate the secret (both signatures
verify during the grace) → delete."""

import json
from urllib.parse import urlparse

import pytest
from standardwebhooks.webhooks import Webhook

from deliveries.models import VERIFICATION_EVENT_TYPE, Delivery, DeliveryStatus
from endpoints.models import Endpoint
from events.models import Event
from events.services import publish
from portal.services import portal_link_create
from tests.e2e.conftest import BROWSER_TEST, ROOT, fits, wait_until
from tests.factories import PartnerFactory, make_endpoint
from tests.receiver import Response

pytestmark = BROWSER_TEST
SCREENSHOTS = ROOT / "docs" / "screenshots"
WIDTH = 1366


@pytest.mark.parametrize("language", ["en", "ko"])
def test_partner_journey_in_the_portal(
    live_server, browser, event_types, receiver, start_cluster, language
):
    shots = language == "en"  # the English pass writes the docs' screenshots
    suffix = "" if shots else "-ko"
    partner = PartnerFactory(name="Acme Shop", contact_email="ops@acme.example")
    event_types["order.paid"].example = {"order": {"id": 1234, "amount": 4999}}
    event_types["order.paid"].save()
    state = {"failing": False}
    receiver.respond_with(
        lambda r: (
            Response(503, b'{"error": "inventory service down"}')
            if state["failing"]
            else Response(200, b'{"ok": true}')
        )
    )
    start_cluster()
    # The browser says which language it reads: Accept-Language picks it.
    context = browser.new_context(
        viewport={"width": WIDTH, "height": 900},
        locale="ko-KR" if language == "ko" else "en-US",
    )
    page = context.new_page()
    page.set_default_timeout(20_000)

    # 1. The sign-in link (what the company's "Manage webhooks" button opens).
    _link, url = portal_link_create(partner, by="test", label="alice@acme.example")
    page.goto(live_server.url + urlparse(url).path)
    assert page.get_attribute("html", "lang") == language
    page.click("#continue")
    page.wait_for_selector("#register-webhook")
    assert page.inner_text("#portal-partner") == "Acme Shop"
    if language == "ko":
        assert "웹훅 등록" in page.inner_text("#register-webhook")
        assert "전송 로그" in page.inner_text("#nav-deliveries")
        assert "아직 웹훅이 없습니다" in page.inner_text("#no-webhooks")  # none registered yet

    # 2. Register a webhook at the receiver with a generated token.
    page.click("#register-webhook")
    page.fill("#id_name", "order-sync")
    page.fill("#id_url", receiver.url_for("/portal-hook"))
    page.check("#id_event_types__order_paid")
    page.click("#generate-token")  # picks "generate": the server makes it, shown once
    assert page.is_checked("input[name=token_action][value=generate]")
    if shots:
        page.screenshot(path=str(SCREENSHOTS / "portal-register.png"), full_page=True)
    fits(page)
    page.click("#save-webhook")
    page.wait_for_selector("#secret-1")
    secret = page.input_value("#secret-1")
    token = page.input_value("#secret-2")
    endpoint = Endpoint.objects.get(partner=partner)
    assert secret == endpoint.signing_secret and secret.startswith("whsec_")
    assert token == endpoint.auth_token
    page.click("a.pt-primary")  # "I have copied it"
    page.wait_for_selector(f"#webhook-{endpoint.public_id}")
    assert secret not in page.content() and token not in page.content()

    # 3. A test event: sent by a worker, shown when it is back; signed, with the token.
    row = f"#webhook-{endpoint.public_id}"
    page.click(f"{row} .pt-actions a >> nth=0")
    page.click("#send-test")
    page.wait_for_selector("#test-result[data-status='200']", timeout=30_000)
    if shots:
        page.screenshot(path=str(SCREENSHOTS / "portal-test.png"), full_page=True)
    (test_request,) = receiver.wait_for(1, timeout=10)
    assert Webhook(secret).verify(test_request.body, dict(test_request.headers))["type"] == (
        "webhookhub.test"
    )
    assert test_request.headers["Authorization"] == f"Bearer {token}"

    # 4. Off (one click): what is published meanwhile is held; on again: it arrives.
    page.goto(live_server.url + "/portal/")
    page.click(f"{row} [data-toggle]")
    page.wait_for_selector(f"{row} [data-toggle][aria-checked='false']")
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_by == "portal:alice@acme.example"
    held = publish("order.paid", {"order": {"id": 1}}, partner=partner)
    page.wait_for_timeout(1500)
    assert len(receiver.requests) == 1, "nothing reaches the receiver while it is off"
    if shots:
        page.screenshot(path=str(SCREENSHOTS / "portal-webhooks-off.png"), full_page=True)
    page.click(f"{row} [data-toggle]")
    page.wait_for_selector(f"{row} [data-toggle][aria-checked='true']")
    on_event = publish("order.paid", {"order": {"id": 2}}, partner=partner)
    for event, what in ((held, "the event held while off"), (on_event, "the event after")):
        wait_until(
            lambda e=event: any(r.json().get("id") == e.public_id for r in receiver.requests),
            timeout=30,
            message=f"{what} arrived",
        )

    # 5. The receiver fails: the delivery log shows its answer; retry one.
    state["failing"] = True
    failing = publish("order.paid", {"order": {"id": 3}}, partner=partner)
    delivery = wait_until(
        lambda: Delivery.objects.filter(event=failing, last_status_code=503).first(),
        timeout=30,
        message="the failing delivery was tried",
    )
    page.click("#nav-deliveries")
    page.wait_for_selector(f"#delivery-{delivery.public_id}")
    assert "503" in page.inner_text(f"#delivery-{delivery.public_id}")
    fits(page)
    if shots:
        page.screenshot(path=str(SCREENSHOTS / "portal-deliveries.png"), full_page=True)
    page.click(f"#delivery-{delivery.public_id} a")
    page.wait_for_selector("#attempt-1")
    assert "inventory service down" in page.inner_text("#attempt-1")
    assert token not in page.content()  # the Authorization header is masked
    if shots:
        page.screenshot(path=str(SCREENSHOTS / "portal-delivery.png"), full_page=True)
    state["failing"] = False
    page.click("#retry-delivery")
    wait_until(
        lambda: Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.SUCCEEDED,
        timeout=30,
        message="the retried delivery succeeded",
    )

    # 6. Rotate the secret: the new one is shown once; both sign during the grace.
    page.goto(live_server.url + f"/portal/webhooks/{endpoint.public_id}/rotate-secret/")
    page.click("#confirm-rotate")
    page.wait_for_selector("#secret-1")
    new_secret = page.input_value("#secret-1")
    assert new_secret != secret and new_secret.startswith("whsec_")
    rotated = publish("order.paid", {"order": {"id": 4}}, partner=partner)
    request = wait_until(
        lambda: next(
            (r for r in receiver.requests if r.json().get("id") == rotated.public_id), None
        ),
        timeout=30,
        message="the event after the rotation arrived",
    )
    assert len(request.headers["webhook-signature"].split()) == 2
    Webhook(new_secret).verify(request.body, dict(request.headers))
    Webhook(secret).verify(request.body, dict(request.headers))

    # 7. The webhooks list fits 1366 px; then the language switcher; then delete.
    page.goto(live_server.url + "/portal/")
    fits(page)
    if shots:
        page.screenshot(path=str(SCREENSHOTS / "portal-webhooks.png"), full_page=True)
    else:
        page.screenshot(path=str(SCREENSHOTS / f"portal-webhooks{suffix}.png"), full_page=True)
    other = "en" if language == "ko" else "ko"
    page.select_option("#language-select", other)  # applies itself (a little JS)
    page.wait_for_function(f"document.documentElement.lang === '{other}'")
    page.select_option("#language-select", language)
    page.wait_for_function(f"document.documentElement.lang === '{language}'")
    page.set_viewport_size({"width": 390, "height": 844})
    fits(page)
    if shots:
        page.screenshot(path=str(SCREENSHOTS / "portal-mobile.png"), full_page=True)
    page.set_viewport_size({"width": WIDTH, "height": 900})
    page.click(f"{row} a.pt-danger")
    page.wait_for_selector("#confirm-delete")  # a page of its own asks first
    page.click("#confirm-delete")
    page.wait_for_selector("#no-webhooks")
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
    context.close()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_partner_verifies_a_webhook_by_pasting_its_challenge(
    live_server, browser, event_types, settings, language
):
    """Verification required: a new webhook is held; the partner opens its Verify page
    (fits 1366 px, in the browser's language), a wrong challenge is refused on the form,
    the one the endpoint was sent verifies it and the list says so."""
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True
    partner = PartnerFactory(name="Acme Shop")
    endpoint = make_endpoint(partner, url="https://hooks.acme.example/wh", name="order-sync")
    sent = Event.objects.get(event_type__name=VERIFICATION_EVENT_TYPE)
    challenge = json.loads(sent.body)["data"]["challenge"]
    context = browser.new_context(
        viewport={"width": WIDTH, "height": 900},
        locale="ko-KR" if language == "ko" else "en-US",
    )
    page = context.new_page()
    page.set_default_timeout(20_000)
    _link, url = portal_link_create(partner, by="test", label="alice@acme.example")
    page.goto(live_server.url + urlparse(url).path)
    page.click("#continue")
    page.click(f"#verify-{endpoint.public_id}")
    page.wait_for_selector("#verification-held")
    fits(page)
    if language == "ko":
        assert "검증" in page.inner_text("#verification h1")

    page.fill("#id_challenge", "whch_not-the-one-we-sent")
    page.click("#paste-challenge")
    page.wait_for_selector("#challenge-errors")
    fits(page)
    endpoint.refresh_from_db()
    assert endpoint.verified_at is None

    page.fill("#id_challenge", challenge)
    page.click("#paste-challenge")
    # Back on the list, which links the (now verified) webhook's verification page.
    page.wait_for_selector(f"#verification-{endpoint.public_id}")
    fits(page)
    endpoint.refresh_from_db()
    assert endpoint.verified_at is not None
    context.close()
