"""Each portal screen's main action through Django's test client, against the real
services, the real engine (run_queue) and a real receiver."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import Endpoint
from events.services import publish
from tests.queue import run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)  # the engine runs on commit

BY = "portal:alice@acme.example"


def register_form(url, **extra):
    data = {
        "name": "order-sync",
        "url": url,
        "description": "",
        "event_types__mode": "fields",
        "event_types__pick": ["order.paid", "order.*"],
        "token_action": "none",
        "headers__mode": "fields",
        "headers__name_0": "X-Api-Key",
        "headers__value_0": "k-123456",
        "timeout_seconds": "10",
        "signature_scheme": "hmac",  # ignored where the field does not exist
        "retry_policy__mode": "fields",
        "retry_policy__strategy": "",
        "filter__mode": "fields",
        "filter__join": "and",
        "filter__path_0": "",
        "filter__op_0": "eq",
        "filter__value_0": "",
    }
    data.update(extra)
    return data


def revealed(client) -> dict:
    page = client.get("/portal/shown-once/")
    assert "no-store" in page["Cache-Control"]
    html = page.content.decode()
    return dict(re.findall(r'value="([^"]+)" data-label="([^"]+)"', html)[::1]) and {
        label: value for value, label in re.findall(r'value="([^"]+)" data-label="([^"]+)"', html)
    }


def test_webhooks_list_shows_state_triggers_and_health(acme_client, acme_endpoint, acme):
    Endpoint.objects.filter(pk=acme_endpoint.pk).update(enabled=False, disabled_by="support:sam")
    page = acme_client.get("/portal/")
    html = page.content.decode()
    assert "Acme orders" in html and acme_endpoint.url in html
    assert "all events" in html  # the "*" subscription in words
    assert "off: by support:sam" in html
    assert 'aria-checked="false"' in html


def test_register_a_webhook_with_a_generated_token(acme_client, acme, event_types):
    response = acme_client.post(
        "/portal/webhooks/new/",
        register_form("https://hooks.acme.example/in", token_action="generate"),
    )
    assert response.status_code == 302 and response["Location"] == "/portal/shown-once/"
    endpoint = Endpoint.objects.get(partner=acme)
    assert endpoint.name == "order-sync" and endpoint.timeout_seconds == 10
    assert endpoint.headers == {"X-Api-Key": "k-123456"}
    assert sorted(endpoint.subscriptions.values_list("event_type", flat=True)) == [
        "order.*",
        "order.paid",
    ]
    shown = revealed(acme_client)
    assert shown["Signing secret"] == endpoint.signing_secret
    assert shown["Bearer token"] == endpoint.auth_token and endpoint.auth_token
    # Shown once: the second view has nothing, and no page ever shows them again.
    again = acme_client.get("/portal/shown-once/").content.decode()
    assert endpoint.signing_secret not in again and endpoint.auth_token not in again
    edit = acme_client.get(f"/portal/webhooks/{endpoint.public_id}/").content.decode()
    assert endpoint.auth_token not in edit and "k-123456" not in edit
    assert AuditEntry.objects.filter(actor=BY, action="endpoint.created").exists()


def test_register_with_a_typed_token(acme_client, acme, event_types):
    acme_client.post(
        "/portal/webhooks/new/",
        register_form(
            "https://hooks.acme.example/in", token_action="set", token_value="my-own-token-1"
        ),
    )
    assert Endpoint.objects.get(partner=acme).auth_token == "my-own-token-1"


def test_field_errors_show_on_their_fields(acme_client, acme, event_types, settings):
    settings.WEBHOOKHUB_REQUIRE_HTTPS = True
    response = acme_client.post(
        "/portal/webhooks/new/",
        register_form("http://hooks.acme.example/in", event_types__pick=[]),
    )
    assert response.status_code == 200
    form = response.context["form"]
    assert "url" in form.errors and "event_types" in form.errors
    html = response.content.decode()
    url_field = html.split('id="field-url"')[1].split('id="field-')[0]
    assert "pt-field-errors" in url_field
    assert not Endpoint.objects.filter(partner=acme).exists()


def test_register_form_has_no_partner_field(acme_client, globex, event_types):
    page = acme_client.get("/portal/webhooks/new/")
    assert "partner" not in page.context["form"].fields
    acme_client.post(
        "/portal/webhooks/new/",
        register_form("https://hooks.acme.example/in", partner=str(globex.pk)),
    )
    assert not Endpoint.objects.filter(partner=globex).exists()


def test_edit_a_webhook(acme_client, acme_endpoint):
    response = acme_client.post(
        f"/portal/webhooks/{acme_endpoint.public_id}/",
        register_form("https://hooks.acme.example/v2", name="renamed", token_action="keep"),
    )
    assert response.status_code == 302
    acme_endpoint.refresh_from_db()
    assert acme_endpoint.name == "renamed" and acme_endpoint.url.endswith("/v2")
    assert AuditEntry.objects.filter(actor=BY, action="endpoint.updated").exists()


def test_switch_off_holds_waiting_deliveries_and_on_sends_them(
    acme_client, acme_endpoint, acme, receiver
):
    Endpoint.objects.filter(pk=acme_endpoint.pk).update(url=receiver.url_for("/in"))
    publish("order.paid", {"order": {"id": 7}}, partner=acme)  # waiting for a worker
    off = acme_client.post(f"/portal/webhooks/{acme_endpoint.public_id}/toggle/", follow=True)
    assert "is off" in off.content.decode()
    acme_endpoint.refresh_from_db()
    assert not acme_endpoint.enabled and acme_endpoint.disabled_by == BY
    run_queue()
    assert receiver.requests == []
    held = acme_client.get("/portal/deliveries/").content.decode()
    assert "Held:" in held  # the why column says it waits for the switch
    acme_client.post(f"/portal/webhooks/{acme_endpoint.public_id}/toggle/")
    acme_endpoint.refresh_from_db()
    assert acme_endpoint.enabled and acme_endpoint.disabled_by == ""
    run_queue()
    (request,) = receiver.wait_for(1)
    assert request.json()["data"] == {"order": {"id": 7}}
    assert AuditEntry.objects.filter(actor=BY, action="endpoint.disabled").exists()
    assert AuditEntry.objects.filter(actor=BY, action="endpoint.enabled").exists()


def test_delete_with_confirmation(acme_client, acme_endpoint):
    url = f"/portal/webhooks/{acme_endpoint.public_id}/delete/"
    assert b"confirm-delete" in acme_client.get(url).content
    assert Endpoint.objects.filter(pk=acme_endpoint.pk).exists()
    assert acme_client.post(url).status_code == 302
    assert not Endpoint.objects.filter(pk=acme_endpoint.pk).exists()
    assert AuditEntry.objects.filter(actor=BY, action="endpoint.deleted").exists()


def test_rotate_secret_shows_it_once_and_keeps_the_old_one_for_the_grace(
    acme_client, acme_endpoint
):
    old = acme_endpoint.signing_secret
    response = acme_client.post(
        f"/portal/webhooks/{acme_endpoint.public_id}/rotate-secret/", {"grace_hours": 24}
    )
    assert response.status_code == 302
    page = acme_client.get("/portal/shown-once/")
    acme_endpoint.refresh_from_db()
    assert acme_endpoint.signing_secret != old
    assert acme_endpoint.signing_secret in page.content.decode()
    assert "24 h" in page.content.decode()
    assert acme_endpoint.active_secrets() == [acme_endpoint.signing_secret, old]


def test_send_test_event_shows_the_result(acme_client, acme_endpoint, receiver):
    Endpoint.objects.filter(pk=acme_endpoint.pk).update(url=receiver.url_for("/in"))
    receiver.script(Response(202, b'{"received": true}'))
    url = f"/portal/webhooks/{acme_endpoint.public_id}/test/"
    response = acme_client.post(url)
    assert response.status_code == 302
    waiting = acme_client.get(response["Location"])
    assert b'http-equiv="refresh"' in waiting.content  # no worker yet: it refreshes
    run_queue()
    result = acme_client.get(response["Location"]).content.decode()
    assert "HTTP 202" in result and "received" in result
    (request,) = receiver.wait_for(1)
    assert request.json()["type"] == "webhookhub.test"


@pytest.fixture
def failed(acme_endpoint, acme, receiver):
    Endpoint.objects.filter(pk=acme_endpoint.pk).update(
        url=receiver.url_for("/in"), retry_policy={"max_attempts": 1}
    )
    receiver.respond_with(lambda r: Response(503, b'{"error": "db down"}'))
    events = [publish("order.paid", {"order": {"id": n}}, partner=acme) for n in range(2)]
    publish("order.refunded", {"order": {"id": 9}}, partner=acme)
    run_queue()
    return [e.deliveries.get() for e in events]


def test_delivery_log_filters_by_status_and_type(acme_client, failed):
    html = acme_client.get("/portal/deliveries/?status=dead&event_type=order.paid").content.decode()
    assert all(d.public_id in html for d in failed)
    assert html.count('data-status="dead"') == 2
    html = acme_client.get("/portal/deliveries/?event_type=order.refunded").content.decode()
    assert failed[0].public_id not in html and "order.refunded" in html
    per_webhook = acme_client.get(f"/portal/webhooks/{failed[0].endpoint.public_id}/deliveries/")
    assert failed[0].public_id in per_webhook.content.decode()


def test_delivery_shows_attempts_with_masked_headers_and_response(acme_client, failed):
    html = acme_client.get(f"/portal/deliveries/{failed[0].public_id}/").content.decode()
    assert "HTTP 503" in html and "db down" in html
    assert "webhook-signature" in html
    endpoint = failed[0].endpoint
    endpoint.refresh_from_db()
    assert endpoint.signing_secret not in html


def test_retry_a_dead_delivery(acme_client, failed, receiver):
    receiver.respond_with(lambda r: Response(200, b"ok"))
    response = acme_client.post(f"/portal/deliveries/{failed[0].public_id}/retry/")
    assert response.status_code == 302
    run_queue()
    failed[0].refresh_from_db()
    assert failed[0].status == DeliveryStatus.SUCCEEDED
    assert AuditEntry.objects.filter(actor=BY, action="delivery.retried").exists()


def test_recover_counts_first_then_resends(acme_client, failed, receiver):
    endpoint = failed[0].endpoint
    url = f"/portal/webhooks/{endpoint.public_id}/recover/"
    since = timezone.localtime(timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    counted = acme_client.post(url, {"since": since})
    assert b'data-count="3"' in counted.content  # two order.paid and one order.refunded
    assert not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists()
    receiver.respond_with(lambda r: Response(200, b"ok"))
    assert acme_client.post(url, {"since": since, "confirm": "1"}).status_code == 302
    run_queue()
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


def test_event_catalog_shows_types_with_examples(acme_client, event_types):
    event_types["order.paid"].example = {"order": {"id": 1, "amount": 4999}}
    event_types["order.paid"].save()
    html = acme_client.get("/portal/events/").content.decode()
    assert "order.paid" in html and "4999" in html


def test_verifying_page_uses_the_partners_endpoint_ids(acme_client, acme_endpoint):
    html = acme_client.get("/portal/verifying/").content.decode()
    assert acme_endpoint.public_id in html
    assert "standardwebhooks" in html and "webhook-signature" in html


def test_retry_preview_without_javascript(acme_client):
    page = acme_client.post(
        "/portal/retry-preview/",
        {
            "retry_policy__mode": "fields",
            "retry_policy__strategy": "fixed",
            "retry_policy__base_delay": "30",
            "retry_policy__max_attempts": "3",
        },
    )
    assert page.status_code == 200 and b"30 s" in page.content


def test_language_switcher_sets_korean(acme_client):
    response = acme_client.post("/i18n/setlang/", {"language": "ko", "next": "/portal/"})
    assert response.status_code == 302 and response["Location"] == "/portal/"
    page = acme_client.get("/portal/")
    assert b'<html lang="ko">' in page.content


def test_accept_language_picks_korean(acme_client):
    page = acme_client.get("/portal/", HTTP_ACCEPT_LANGUAGE="ko-KR,ko;q=0.9")
    assert b'<html lang="ko">' in page.content


def test_forms_carry_csrf_tokens(acme_client, acme_endpoint):
    for url in (
        "/portal/",
        "/portal/webhooks/new/",
        f"/portal/webhooks/{acme_endpoint.public_id}/",
        f"/portal/webhooks/{acme_endpoint.public_id}/delete/",
        f"/portal/webhooks/{acme_endpoint.public_id}/rotate-secret/",
        f"/portal/webhooks/{acme_endpoint.public_id}/test/",
        f"/portal/webhooks/{acme_endpoint.public_id}/recover/",
    ):
        html = acme_client.get(url).content.decode()
        assert html.count('<form method="post"') <= html.count("csrfmiddlewaretoken"), url


def _queries(client, url) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_lists_cost_the_same_queries_whatever_their_length(acme_client, acme, event_types):
    from tests.factories import make_endpoint

    make_endpoint(acme, name="first")
    publish("order.paid", {"order": {"id": 1}}, partner=acme)
    few = {url: _queries(acme_client, url) for url in ("/portal/", "/portal/deliveries/")}
    for n in range(4):
        make_endpoint(acme, name=f"more {n}", event_types=("order.*",))
    for n in range(5):
        publish("order.paid", {"order": {"id": n}}, partner=acme)
    many = {url: _queries(acme_client, url) for url in ("/portal/", "/portal/deliveries/")}
    assert many == few


def test_an_ed25519_webhook_shows_its_public_key(acme_client, acme_endpoint):
    from endpoints.services import endpoint_update

    endpoint = endpoint_update(acme_endpoint, by="test", signature_scheme="both")
    endpoint.refresh_from_db()
    assert endpoint.public_key.startswith("whpk_")
    for url in (f"/portal/webhooks/{endpoint.public_id}/", "/portal/verifying/"):
        html = acme_client.get(url).content.decode()
        assert endpoint.public_key in html
        assert endpoint.signing_key not in html


def test_the_register_form_previews_through_the_portal_not_the_admin(acme_client):
    """The admin's widgets, previewing through the portal's pages (the admin's need a
    staff login a partner does not have)."""
    html = acme_client.get("/portal/webhooks/new/").content.decode()
    assert 'data-preview-url="/portal/retry-preview/"' in html
    assert 'formaction="/portal/filter-preview/"' in html
    assert "/admin/" not in html
