"""An erased event in the partner portal: the notice instead of the payload, no Retry
button, and a retry refused in words."""

import pytest

from deliveries.erasure import event_expunge
from deliveries.models import Delivery, DeliveryStatus
from events.services import publish
from tests.factories import make_endpoint
from tests.queue import run_queue
from tests.receiver import Response

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "bo.kim@acme.example"


def test_an_erased_delivery_shows_the_notice_and_cannot_be_retried(
    acme, event_types, acme_client, receiver
):
    make_endpoint(acme, name="Acme orders", url=receiver.url_for())
    receiver.default = Response(500, body=f"no {SECRET}")
    event = publish("order.paid", {"email": SECRET}, partner=acme)
    run_queue()
    delivery = Delivery.objects.get(event=event)
    page = acme_client.get(f"/portal/deliveries/{delivery.public_id}/")
    assert SECRET in page.content.decode() and 'id="retry-delivery"' in page.content.decode()

    result = event_expunge(event, by="test")
    assert result.events == 1

    page = acme_client.get(f"/portal/deliveries/{delivery.public_id}/")
    html = page.content.decode()
    assert page.status_code == 200 and SECRET not in html
    assert "Payload erased at" in html and 'id="retry-delivery"' not in html
    refused = acme_client.post(f"/portal/deliveries/{delivery.public_id}/retry/", follow=True)
    assert refused.status_code == 200 and "was erased" in refused.content.decode()
    assert Delivery.objects.get(pk=delivery.pk).status != DeliveryStatus.PENDING
    sent = len(receiver.requests)
    run_queue()
    assert len(receiver.requests) == sent
