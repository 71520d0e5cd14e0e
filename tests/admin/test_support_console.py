"""The admin as support uses it: actions, permissions, secrets shown once and masked."""

from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from deliveries import engine
from deliveries.models import Delivery, DeliveryStatus
from endpoints.models import ApiToken, Endpoint
from events.models import Event, EventType
from events.services import publish
from tests.factories import make_endpoint
from tests.queue import run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)


def login(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def failing(event_types, receiver):
    """An endpoint whose only delivery is dead after a 500."""
    endpoint = make_endpoint(
        url=receiver.url_for("/hook"),
        retry_policy={"max_attempts": 1},
        auth_token="tok-abcdefghijkl-9876",
    )
    receiver.script(Response(500, b"database is down"))
    event = publish("order.paid", {"order": 1})
    engine.deliver(list(event.deliveries.values_list("pk", flat=True)))
    return endpoint, event.deliveries.get()


def test_support_switches_an_endpoint_off_with_a_reason_and_on_again(client, support_user, failing):
    endpoint, _ = failing
    login(client, support_user)
    url = reverse("admin:endpoints_endpoint_disable", args=[endpoint.pk])
    response = client.post(url, {"reason": "partner maintenance window"})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "partner maintenance window"
    assert endpoint.disabled_by == "admin:sam"
    # Switching on asks first (with an optional reason), then does it.
    toggle = reverse("admin:endpoints_endpoint_toggle", args=[endpoint.pk])
    asked = client.post(toggle)
    assert asked.status_code == 200 and b'id="confirm-submit"' in asked.content
    endpoint.refresh_from_db()
    assert not endpoint.enabled, "not before the confirmation"
    client.post(toggle, {"confirm": "1", "reason": "partner is back"})
    endpoint.refresh_from_db()
    assert endpoint.enabled
    from audit.models import AuditEntry

    on = AuditEntry.objects.get(object_id=endpoint.public_id, action="endpoint.enabled")
    assert (on.actor, on.reason) == ("admin:sam", "partner is back")


def test_the_list_toggle_asks_for_a_reason_before_switching_a_partner_off(
    client, support_user, failing
):
    endpoint, _ = failing
    login(client, support_user)
    page = client.get(reverse("admin:endpoints_endpoint_changelist")).content.decode()
    assert f'id="toggle-{endpoint.public_id}"' in page
    response = client.post(
        reverse("admin:endpoints_endpoint_toggle", args=[endpoint.pk]),
        HTTP_REFERER="http://testserver/admin/endpoints/endpoint/",
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:endpoints_endpoint_disable", args=[endpoint.pk])
    endpoint.refresh_from_db()
    assert endpoint.enabled, "one click never switches a live partner off"
    refused = client.post(response["Location"], {"reason": ""})
    assert refused.status_code == 200 and b"errorlist" in refused.content
    client.post(response["Location"], {"reason": "flooding their logs"})
    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_reason == "flooding their logs"


def test_rotated_secret_is_shown_once_then_never_again(client, support_user, failing, receiver):
    endpoint, _ = failing
    login(client, support_user)
    response = client.post(
        reverse("admin:endpoints_endpoint_rotate", args=[endpoint.pk]),
        {"grace_hours": 24},
        follow=True,
    )
    endpoint.refresh_from_db()
    page = response.content.decode()
    assert endpoint.signing_secret in page and "shown only this once" in page
    again = client.get(reverse("admin:shown_once")).content.decode()
    assert endpoint.signing_secret not in again and "already shown once" in again
    change = client.get(
        reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    ).content.decode()
    assert endpoint.signing_secret not in change
    assert "whsec_••••" + endpoint.signing_secret[-4:] in change


def test_regenerated_token_is_shown_once_and_sent_from_then_on(
    client, support_user, failing, receiver
):
    endpoint, _ = failing
    login(client, support_user)
    page = client.post(
        reverse("admin:endpoints_endpoint_regenerate", args=[endpoint.pk]), follow=True
    ).content.decode()
    endpoint.refresh_from_db()
    assert endpoint.auth_token in page and endpoint.auth_token != "tok-abcdefghijkl-9876"
    client.post(reverse("admin:endpoints_endpoint_test", args=[endpoint.pk]))
    run_queue()
    assert receiver.requests[-1].headers["authorization"] == f"Bearer {endpoint.auth_token}"


def test_send_test_event_is_sent_by_a_worker_and_the_page_shows_the_answer(
    client, support_user, failing, receiver
):
    endpoint, _ = failing
    login(client, support_user)
    receiver.script(Response(202, b'{"received": true}'))
    sent_before = len(receiver.requests)
    posted = client.post(reverse("admin:endpoints_endpoint_test", args=[endpoint.pk]))
    assert posted.status_code == 302 and "?delivery=dlv_" in posted["Location"]
    assert len(receiver.requests) == sent_before, "the web request sends nothing itself"
    waiting = client.get(posted["Location"]).content.decode()
    assert "waiting for the receiver" in waiting and 'http-equiv="refresh"' in waiting
    run_queue()
    page = client.get(posted["Location"]).content.decode()
    assert "Delivered" in page and "HTTP 202" in page and "received" in page
    assert 'http-equiv="refresh"' not in page
    request = receiver.requests[-1]
    Webhook(endpoint.signing_secret).verify(request.body, dict(request.headers))
    assert request.json()["type"] == "webhookhub.test"


def test_test_result_page_shows_only_this_endpoints_tests(client, support_user, failing):
    endpoint, delivery = failing
    login(client, support_user)
    url = reverse("admin:endpoints_endpoint_test", args=[endpoint.pk])
    assert client.get(f"{url}?delivery={delivery.public_id}").status_code == 404
    assert client.get(f"{url}?delivery=dlv_nope").status_code == 404


def test_recover_says_how_many_then_resends_them(client, support_user, failing, receiver):
    endpoint, delivery = failing
    login(client, support_user)
    url = reverse("admin:endpoints_endpoint_recover", args=[endpoint.pk])
    since = timezone.localtime(timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    preview = client.post(url, {"since": since}).content.decode()
    assert 'id="recover-count"' in preview and "<strong>1</strong> failed deliveries" in preview
    assert "0 retrying, 1 dead" in preview
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DEAD, "nothing yet"
    client.post(url, {"since": since, "confirm": "1"})
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_trigger_by == "admin:sam"


def test_bulk_retry_asks_first_then_reports_what_happened(client, support_user, failing):
    _, delivery = failing
    login(client, support_user)
    url = reverse("admin:deliveries_delivery_changelist")
    confirm = client.post(url, {"action": "retry_now", "_selected_action": [delivery.pk]})
    assert b"Yes, retry now" in confirm.content
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DEAD
    done = client.post(
        url,
        {"action": "retry_now", "_selected_action": [delivery.pk], "confirm": "yes"},
        follow=True,
    )
    assert b"Queued 1 of 1 selected deliveries; 0 skipped" in done.content
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING


def test_bulk_cancel_reports_skipped(client, support_user, failing):
    _, dead = failing
    waiting = publish("order.paid", {"n": 2}).deliveries.get()
    login(client, support_user)
    done = client.post(
        reverse("admin:deliveries_delivery_changelist"),
        {"action": "cancel", "_selected_action": [dead.pk, waiting.pk], "confirm": "yes"},
        follow=True,
    )
    assert b"Cancelled 1 of 2 selected deliveries; 1 skipped" in done.content
    assert Delivery.objects.get(pk=waiting.pk).status == DeliveryStatus.CANCELLED


def test_event_replay_to_chosen_endpoint(client, support_user, failing):
    endpoint, delivery = failing
    login(client, support_user)
    url = reverse("admin:events_event_changelist")
    form = client.post(url, {"action": "replay", "_selected_action": [delivery.event_id]})
    assert endpoint.name.encode() in form.content
    done = client.post(
        url,
        {
            "action": "replay",
            "_selected_action": [delivery.event_id],
            "confirm": "1",
            "endpoints": [endpoint.pk],
        },
        follow=True,
    )
    assert b"1 deliveries queued for 1 event" in done.content
    delivery.refresh_from_db()
    assert delivery.next_trigger == "replay" and delivery.next_trigger_by == "admin:sam"


def test_delivery_page_shows_why_it_failed_masked_and_as_curl(client, support_user, failing):
    _, delivery = failing
    login(client, support_user)
    page = client.get(
        reverse("admin:deliveries_delivery_change", args=[delivery.pk])
    ).content.decode()
    assert "database is down" in page and "HTTP 500" in page
    assert "curl -X POST" in page
    assert "tok-abcdefghijkl" not in page and "••••9876" in page
    signature = delivery.attempts.get().request_headers["webhook-signature"]
    assert signature.startswith("••••")


def test_filter_preview_uses_the_engine_filter(client, support_user, event_types):
    for amount in (50, 150, 250):
        publish("order.paid", {"amount": amount})
    publish("shipment.moved", {"amount": 999})
    login(client, support_user)
    url = reverse("admin:endpoints_endpoint_filter_preview")
    page = client.get(
        url,
        {"event_type": "order.*", "filter": '{"path": "data.amount", "op": "gte", "value": 100}'},
    )
    assert b"<strong>2</strong> of 3 would be delivered" in page.content
    bad = client.get(
        url, {"event_type": "order.*", "filter": '{"path": "data.amount", "op": "nope"}'}
    )
    assert b"filter.op" in bad.content


def test_endpoint_form_shows_validation_errors_on_the_field(admin_client, event_types, settings):
    settings.WEBHOOKHUB_ALLOW_PRIVATE_URLS = False
    endpoint = make_endpoint(url="https://hooks.partner.example/wh")
    url = reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    data = {
        "partner": endpoint.partner_id,
        "name": "x",
        "url": "http://10.0.0.1/hook",
        "description": "",
        "headers": '{"Webhook-Id": "x"}',
        "timeout_seconds": 15,
        "retry_policy": '{"jitter": 3}',
        "rate_limit_per_second": "",
        "max_in_flight": 10,
        "filter": "",
        "event_types": '[{"event_type": "order.*", "filter": {"or": []}}]',
    }
    page = admin_client.post(url, data).content.decode()
    assert "private address" in page and "cannot be overridden" in page
    assert "retry_policy.jitter" in page and "filter.or" in page
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.partner.example/wh"


def test_new_endpoint_secret_is_shown_once(admin_client, event_types):
    from tests.factories import PartnerFactory

    partner = PartnerFactory()
    data = {
        "partner": partner.pk,
        "name": "New",
        "url": "http://127.0.0.1:9/hook",
        "description": "",
        "headers": "{}",
        "timeout_seconds": 15,
        "retry_policy": "{}",
        "rate_limit_per_second": "",
        "max_in_flight": 10,
        "filter": "",
        "event_types": '["order.*"]',
    }
    page = admin_client.post(reverse("admin:endpoints_endpoint_add"), data, follow=True)
    endpoint = Endpoint.objects.get(name="New")
    assert endpoint.signing_secret in page.content.decode()
    assert list(endpoint.subscriptions.values_list("event_type", flat=True)) == ["order.*"]


def test_new_api_token_is_shown_once_and_only_hashed(admin_client, event_types):
    page = admin_client.post(
        reverse("admin:endpoints_apitoken_add"),
        {"role": "publisher", "name": "orders service"},
        follow=True,
    )
    token = ApiToken.objects.get(name="orders service")
    raw = page.content.decode().split('id="secret-value" value="')[1].split('"')[0]
    assert raw.startswith(token.prefix) and ApiToken.hash(raw) == token.key_hash


def test_event_type_with_events_is_archived_not_deleted(admin_client, event_types):
    publish("order.paid", {})
    paid = EventType.objects.get(name="order.paid")
    assert (
        admin_client.get(reverse("admin:events_eventtype_delete", args=[paid.pk])).status_code
        == 403
    )
    admin_client.post(
        reverse("admin:events_eventtype_changelist"),
        {"action": "archive", "_selected_action": [paid.pk]},
    )
    paid.refresh_from_db()
    assert paid.archived_at is not None and Event.objects.filter(event_type=paid).exists()


def test_staff_without_support_permissions_cannot_run_support_actions(client, viewer_user, failing):
    endpoint, delivery = failing
    login(client, viewer_user)
    change = client.get(
        reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    ).content.decode()
    assert "action-rotate" not in change and "action-test" not in change
    for name in ("toggle", "disable", "rotate", "regenerate", "test", "recover"):
        response = client.post(reverse(f"admin:endpoints_endpoint_{name}", args=[endpoint.pk]))
        assert response.status_code == 403, name
    listing = client.get(reverse("admin:deliveries_delivery_changelist")).content.decode()
    assert 'value="retry_now"' not in listing and 'value="cancel"' not in listing
    response = client.post(
        reverse("admin:deliveries_delivery_changelist"),
        {"action": "retry_now", "_selected_action": [delivery.pk], "confirm": "yes"},
    )
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.DEAD
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_support_group_does_the_support_job_and_nothing_else(client, support_user, failing):
    endpoint, _ = failing
    login(client, support_user)
    change = client.get(
        reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])
    ).content.decode()
    for button in (
        "action-disable",
        "action-test",
        "action-rotate",
        "action-regenerate",
        "action-recover",
    ):
        assert button in change
    assert client.get(reverse("admin:auth_user_changelist")).status_code == 403
    assert client.get(reverse("admin:auth_group_changelist")).status_code == 403
    # Support registers and edits endpoints for partners (endpoints 0005), nothing more.
    assert client.get(reverse("admin:endpoints_endpoint_add")).status_code == 200
    assert User.objects.get(pk=support_user.pk).has_perm("endpoints.change_endpoint")
    assert not User.objects.get(pk=support_user.pk).has_perm("endpoints.change_partner")


def test_raw_secrets_never_appear_on_admin_pages(admin_client, failing, receiver):
    endpoint, delivery = failing
    secrets = [endpoint.signing_secret, endpoint.auth_token]
    pages = [
        reverse("admin:index"),
        reverse("admin:endpoints_endpoint_changelist"),
        reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]),
        reverse("admin:endpoints_partner_change", args=[endpoint.partner_id]),
        reverse("admin:deliveries_delivery_changelist"),
        reverse("admin:deliveries_delivery_change", args=[delivery.pk]),
        reverse("admin:events_event_change", args=[delivery.event_id]),
    ]
    for url in pages:
        html = admin_client.get(url).content.decode()
        for secret in secrets:
            assert secret not in html, url
            assert secret[6:] not in html, url


def test_search_finds_events_and_deliveries_by_id_key_type_partner_and_payload(
    admin_client, event_types
):
    from tests.factories import PartnerFactory

    acme = PartnerFactory(name="Acme Shop")
    make_endpoint(acme)
    paid = publish("order.paid", {"sku": "blue-widget"}, partner=acme, idempotency_key="order-77")
    moved = publish("shipment.moved", {"sku": "red-gadget"})
    events_url = reverse("admin:events_event_changelist")

    def found(url, term):
        return admin_client.get(url, {"q": term}).content.decode()

    assert paid.public_id in found(events_url, paid.public_id)
    assert moved.public_id not in found(events_url, paid.public_id)
    assert paid.public_id in found(events_url, "order-77")
    assert moved.public_id in found(events_url, "shipment")
    assert paid.public_id in found(events_url, "acme")
    page = found(events_url, "payload:red-gadget")
    assert moved.public_id in page and paid.public_id not in page
    delivery = paid.deliveries.get()
    deliveries_url = reverse("admin:deliveries_delivery_changelist")
    assert delivery.public_id in found(deliveries_url, delivery.public_id)
    assert delivery.public_id in found(deliveries_url, paid.public_id)


def test_dashboard_link_to_several_statuses_filters_the_deliveries(admin_client, failing):
    _, dead = failing
    waiting = publish("order.paid", {"n": 3}).deliveries.get()
    url = reverse("admin:deliveries_delivery_changelist")
    page = admin_client.get(url, {"status__in": "retrying,dead"}).content.decode()
    assert dead.public_id in page and waiting.public_id not in page


def test_one_time_secret_waits_encrypted_in_the_session_and_expires(
    client, support_user, failing, receiver
):
    """F7: the session row never holds the secret in clear, and an unopened page's
    secret is gone after 10 minutes."""
    from django.contrib.sessions.models import Session

    endpoint, _ = failing
    login(client, support_user)
    client.post(reverse("admin:endpoints_endpoint_regenerate", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    token = endpoint.auth_token
    (row,) = Session.objects.all()
    assert token not in row.session_data and token not in str(row.get_decoded())
    with time_machine.travel(timezone.now() + timedelta(minutes=11)):
        late = client.get(reverse("admin:shown_once")).content.decode()
    assert token not in late and "no longer available" in late

    client.post(reverse("admin:endpoints_endpoint_regenerate", args=[endpoint.pk]))
    endpoint.refresh_from_db()
    page = client.get(reverse("admin:shown_once")).content.decode()
    assert endpoint.auth_token in page, "within the 10 minutes it is shown once"
