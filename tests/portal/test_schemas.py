"""Event type schemas in the partner portal (issue 16, part 1): the catalog shows each
type's schema with its version and what is checked, and a delivery of an event accepted
in warn mode says why it did not validate."""

import pytest

from deliveries.models import Delivery
from events.catalog import event_type_create
from events.models import SchemaMode
from events.services import publish

pytestmark = pytest.mark.django_db

AMOUNT = {"type": "object", "properties": {"amount": {"type": "integer"}}}


def test_the_catalog_shows_schema_version_mode_and_example(acme_client, event_types):
    event_type = event_type_create(
        name="invoice.paid",
        schema=AMOUNT,
        example={"amount": 4999},
        schema_mode=SchemaMode.ENFORCE,
        by="test",
    )
    event_type.schema = {**AMOUNT, "required": ["amount"]}
    event_type.save()
    html = acme_client.get("/portal/events/").content.decode()
    section = html[html.index('id="type-invoicepaid"') :]
    assert "4999" in section and "&quot;required&quot;" in section
    assert "Version 2. Every event of this type validates against it" in section


def test_a_delivery_of_a_warn_event_shows_its_schema_problems(acme_client, acme, acme_endpoint):
    event_type_create(name="invoice.paid", schema=AMOUNT, schema_mode=SchemaMode.WARN, by="t")
    event = publish("invoice.paid", {"amount": "x"}, partner=acme)
    delivery = Delivery.objects.get(event=event)
    html = acme_client.get(f"/portal/deliveries/{delivery.public_id}/").content.decode()
    assert 'id="schema-check" class="pt-note"' in html
    assert "Did not validate against schema version 1" in html
    assert "<code>data.amount</code>: &#x27;x&#x27; is not of type &#x27;integer&#x27;" in html
    plain = Delivery.objects.get(event=publish("order.paid", {}, partner=acme))
    html = acme_client.get(f"/portal/deliveries/{plain.public_id}/").content.decode()
    assert "Not checked" in html and "pt-note" not in html.split('id="schema-check"')[1][:20]
