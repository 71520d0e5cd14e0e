"""Support and endpoint verification: the state on the endpoint page and in the list,
and "Verify again…" (confirm, then a new challenge that a real receiver answers)."""

import pytest
from django.urls import reverse

from audit.models import Action, AuditEntry
from endpoints.models import Endpoint
from events.services import publish
from tests.factories import make_endpoint
from tests.queue import run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def required(settings):
    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True


def test_endpoint_page_and_list_say_awaiting_then_verified(
    client, support_user, event_types, receiver, required
):
    receiver.default = Response(500, "")
    endpoint = make_endpoint(url=receiver.url_for())
    run_queue()
    client.force_login(support_user)
    page = client.get(reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]))
    assert "Awaiting verification since" in page.content.decode()
    assert 'id="action-verify-again"' in page.content.decode()
    listed = client.get(reverse("admin:endpoints_endpoint_changelist")).content.decode()
    assert "awaiting verification" in listed


def test_verify_again_confirms_then_sends_a_challenge_the_receiver_answers(
    client, support_user, event_types, receiver, required
):
    receiver.default = Response(500, "down")
    endpoint = make_endpoint(url=receiver.url_for())
    publish("order.paid", {"n": 1}, partner=endpoint.partner)
    run_queue()
    assert Endpoint.objects.get(pk=endpoint.pk).awaiting_verification
    client.force_login(support_user)
    url = reverse("admin:endpoints_endpoint_verify_again", args=[endpoint.pk])
    confirm = client.get(url)
    assert confirm.status_code == 200
    body = confirm.content.decode()
    assert "its deliveries are held" in body and 'id="confirm-submit"' in body
    assert AuditEntry.objects.filter(action=Action.VERIFICATION_SENT).count() == 1  # GET acts not

    receiver.answer_challenges()
    done = client.post(url, {"reason": "partner fixed the handler"}, follow=True)
    assert "A new verification challenge is on its way" in done.content.decode()
    entry = AuditEntry.objects.filter(action=Action.VERIFICATION_SENT).latest("id")
    assert (entry.actor, entry.reason) == ("admin:sam", "partner fixed the handler")
    run_queue()
    types = [r.json()["type"] for r in receiver.requests]
    assert types == ["webhookhub.endpoint.verification"] * 2 + ["order.paid"]
    assert Endpoint.objects.get(pk=endpoint.pk).verified_at is not None


def test_verify_again_needs_the_switch_permission(client, viewer_user, event_types):
    endpoint = make_endpoint()
    client.force_login(viewer_user)
    url = reverse("admin:endpoints_endpoint_verify_again", args=[endpoint.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {}).status_code == 403
    assert not AuditEntry.objects.filter(action=Action.VERIFICATION_SENT).exists()
    page = client.get(reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]))
    assert 'id="action-verify-again"' not in page.content.decode()
