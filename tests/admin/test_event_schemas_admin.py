"""Event type schemas in the admin (issue 16, part 1): the mode select and the schema with
its version on the event type page, a bad schema or an example that does not validate
refused on its field, a schema change bumping the version, and an event's schema check
(problems in warn mode) next to its envelope."""

import json

import pytest
from django.urls import reverse

from events.catalog import event_type_create
from events.models import EventType, SchemaMode
from events.services import publish

pytestmark = pytest.mark.django_db

AMOUNT = {"type": "object", "properties": {"amount": {"type": "integer"}}}


def form_data(**changes) -> dict:
    data = {
        "name": "invoice.paid",
        "description": "",
        "schema_mode": "enforce",
        "schema": json.dumps(AMOUNT),
        "example": json.dumps({"amount": 3}),
    }
    return {**data, **changes}


def form_errors(response) -> dict:
    assert response.status_code == 200, "the form again, with errors"
    return response.context["adminform"].form.errors


def test_the_add_form_has_the_mode_select_and_saves_version_1(admin_client, event_types):
    page = admin_client.get(reverse("admin:events_eventtype_add"))
    assert b'<select name="schema_mode"' in page.content
    saved = admin_client.post(reverse("admin:events_eventtype_add"), form_data())
    assert saved.status_code == 302, form_errors(saved)
    event_type = EventType.objects.get(name="invoice.paid")
    assert (event_type.schema_mode, event_type.schema_version) == ("enforce", 1)


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"schema": json.dumps({"type": "whatever"})}, "schema", "Not a valid JSON Schema"),
        ({"schema": json.dumps({"$ref": "https://x.example/s"})}, "schema", "inside the schema"),
        (
            {"example": json.dumps({"amount": "3"})},
            "example",
            "example.amount: '3' is not of type 'integer'",
        ),
        ({"schema": "null", "example": "null"}, "schema_mode", "Give a schema"),
    ],
)
def test_the_form_refuses_on_the_field(admin_client, event_types, changes, field, words):
    refused = admin_client.post(reverse("admin:events_eventtype_add"), form_data(**changes))
    errors = form_errors(refused)
    assert list(errors) == [field] and words in errors[field][0]
    assert not EventType.objects.filter(name="invoice.paid").exists()


def test_changing_the_schema_in_the_admin_bumps_the_version_shown(admin_client, event_types):
    event_type = event_type_create(name="invoice.paid", schema=AMOUNT, by="test")
    url = reverse("admin:events_eventtype_change", args=[event_type.pk])
    same = admin_client.post(url, form_data(description="same schema", schema_mode="off"))
    assert same.status_code == 302, form_errors(same)
    assert EventType.objects.get(pk=event_type.pk).schema_version == 1
    new_schema = {**AMOUNT, "required": ["amount"]}
    changed = admin_client.post(url, form_data(schema=json.dumps(new_schema)))
    assert changed.status_code == 302, form_errors(changed)
    assert EventType.objects.get(pk=event_type.pk).schema_version == 2
    page = admin_client.get(url).content.decode()
    assert "field-schema_version" in page and '<div class="readonly">2</div>' in page


def test_the_event_page_shows_the_schema_problems_of_a_warn_event(admin_client, event_types):
    event_type_create(name="invoice.paid", schema=AMOUNT, schema_mode=SchemaMode.WARN, by="t")
    flagged = publish("invoice.paid", {"amount": "x"})
    page = admin_client.get(reverse("admin:events_event_change", args=[flagged.pk]))
    html = page.content.decode()
    assert 'id="schema-check"' in html
    assert "Did not validate against schema version 1" in html
    assert "<code>data.amount</code>: &#x27;x&#x27; is not of type &#x27;integer&#x27;" in html
    valid = publish("invoice.paid", {"amount": 1})
    html = admin_client.get(reverse("admin:events_event_change", args=[valid.pk])).content
    assert b"Valid against schema version 1." in html
    off = publish("order.paid", {})
    html = admin_client.get(reverse("admin:events_event_change", args=[off.pk])).content
    assert b"Not checked: the type&#x27;s schema mode was off" in html
