"""Custom header values on the admin's endpoint pages: shown masked, never in clear; a
form saved as shown keeps them; a value is replaced only by typing a new one."""

import json

import pytest
from django.urls import reverse

from deliveries import engine
from endpoints.models import Endpoint
from events.services import publish
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "hunter2-long-secret-value"
SHOWN = "••••alue"


def form_data(page) -> dict:
    """What the browser posts back for the change form as it was rendered."""
    data = {}
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        management = inline.formset.management_form
        data.update({management.add_prefix(n): management[n].value() for n in management.fields})
        forms += inline.formset.forms
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if value is not None and value is not False:
                data[form.add_prefix(name)] = value
    return data


@pytest.fixture
def endpoint(event_types, receiver):
    return make_endpoint(
        url=receiver.url_for("/hook"), headers={"X-Password": SECRET, "X-Tenant": "acme"}
    )


def change_url(endpoint):
    return reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])


def test_change_page_and_list_show_header_values_masked_only(admin_client, endpoint):
    page = admin_client.get(change_url(endpoint))
    html = page.content.decode()
    assert "hunter2" not in html and "acme" not in html
    assert SHOWN in html and "X-Password" in html
    listed = admin_client.get(reverse("admin:endpoints_endpoint_changelist")).content.decode()
    assert "hunter2" not in listed


def test_view_only_staff_see_header_values_masked_only(client, viewer_user, endpoint):
    client.force_login(viewer_user)
    page = client.get(change_url(endpoint))
    assert page.status_code == 200
    html = page.content.decode()
    assert "hunter2" not in html and "acme" not in html
    assert f"X-Password: {SHOWN}" in html


def test_saving_the_form_as_shown_keeps_the_values(admin_client, endpoint, receiver):
    data = form_data(admin_client.get(change_url(endpoint)))
    assert json.loads(data["headers"]) == {"X-Password": SHOWN, "X-Tenant": "••••"}
    data["name"] = "renamed"
    saved = admin_client.post(change_url(endpoint), data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    endpoint.refresh_from_db()
    assert endpoint.name == "renamed"
    assert endpoint.headers == {"X-Password": SECRET, "X-Tenant": "acme"}
    event = publish("order.paid", {"n": 1})
    engine.deliver(list(event.deliveries.values_list("pk", flat=True)))
    (request,) = receiver.wait_for(1)
    assert request.headers["X-Password"] == SECRET and request.headers["X-Tenant"] == "acme"

    delivery = event.deliveries.get()
    page = admin_client.get(reverse("admin:deliveries_delivery_change", args=[delivery.pk]))
    assert "hunter2" not in page.content.decode() and SHOWN in page.content.decode()


def test_a_typed_value_replaces_and_a_removed_name_goes(admin_client, endpoint):
    data = form_data(admin_client.get(change_url(endpoint)))
    data["headers"] = json.dumps({"X-Password": "typed-new-secret-0042"})
    assert admin_client.post(change_url(endpoint), data).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.headers == {"X-Password": "typed-new-secret-0042"}


@pytest.mark.parametrize(
    ("headers", "words"),
    [
        ({"X-Password": "ab\x0bcd"}, "The value of X-Password contains a control character"),
        ({"X-Password": "caf\u00e9"}, "The value of X-Password contains U+00E9"),
        ({"X-Password": "••••nope"}, "The value of X-Password is masked"),
        ({"Upgrade": "h2c"}, "Upgrade is set by webhookhub"),
    ],
)
def test_bad_header_values_are_refused_on_the_field(admin_client, endpoint, headers, words):
    data = form_data(admin_client.get(change_url(endpoint)))
    data["headers"] = json.dumps(headers)
    page = admin_client.post(change_url(endpoint), data)
    assert page.status_code == 200
    assert words in " ".join(page.context["adminform"].form.errors["headers"])
    assert Endpoint.objects.get(pk=endpoint.pk).headers == {
        "X-Password": SECRET,
        "X-Tenant": "acme",
    }


def test_a_stored_token_the_rule_now_refuses_does_not_break_the_form(admin_client, endpoint):
    """Tokens saved before the rule existed: the form (which does not edit the token)
    still saves; the token is refused when it is set (API, services)."""
    Endpoint.objects.filter(pk=endpoint.pk).update(auth_token="legacy\x0btoken-0123")
    data = form_data(admin_client.get(change_url(endpoint)))
    data["name"] = "renamed"
    assert admin_client.post(change_url(endpoint), data).status_code == 302
    assert Endpoint.objects.get(pk=endpoint.pk).name == "renamed"
