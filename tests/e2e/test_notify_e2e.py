"""End to end: a notifier configured through WEBHOOKHUB_NOTIFIERS hears the signals of a
real qcluster run (the Slack notifier, pointed at the local receiver)."""

import pytest

from events.services import publish
from tests.e2e.conftest import wait_until
from tests.factories import PartnerFactory, make_endpoint
from tests.receiver import Response

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.xdist_group("e2e"),
]


def test_slack_notifier_hears_dead_delivery_and_disabled_endpoint(
    event_types, receiver, start_cluster
):
    partner = PartnerFactory(name="Acme")
    dying = make_endpoint(
        partner, name="ledger", url=receiver.url_for("/ledger"), retry_policy={"max_attempts": 1}
    )
    gone = make_endpoint(partner, name="legacy", url=receiver.url_for("/legacy"))
    receiver.respond_with(
        lambda r: {"/ledger": Response(500), "/legacy": Response(410)}.get(r.path, Response(200))
    )
    start_cluster(
        extra_env={
            "WEBHOOKHUB_NOTIFIERS": "webhookhub.notifiers.SlackNotifier",
            "WEBHOOKHUB_SLACK_WEBHOOK_URL": receiver.url_for("/slack/hook"),
        }
    )
    event = publish("order.paid", {"order": 7}, partner=partner)
    dead = event.deliveries.get(endpoint=dying)

    def slack_texts():
        return sorted(r.json()["text"] for r in receiver.requests if r.path == "/slack/hook")

    texts = wait_until(
        lambda: (found := slack_texts()) and len(found) >= 2 and found,
        timeout=30,
        message="two Slack posts",
    )
    assert texts == [
        f"Delivery {dead.public_id} of {event.public_id} (order.paid) to ledger (Acme) is dead "
        "after 1 attempts: HTTP 500",
        "Endpoint legacy (Acme) was switched off: receiver answered 410",
    ]
    gone.refresh_from_db()
    assert not gone.enabled
