"""Support registers and edits endpoints with the structured forms: retry policy fields
with the workers' schedule previewed, header rows, event type checkboxes, filter rows,
the bearer token; bad input is refused on its field and writes nothing."""

import json
from datetime import UTC, datetime
from importlib import import_module

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from console.endpoint_widgets import FilterWidget, RetryPolicyWidget
from deliveries import engine
from deliveries.policy import RetryPolicy, next_delay
from endpoints.models import Endpoint, Subscription
from events.services import publish
from tests.factories import PartnerFactory, make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)

MIGRATION = "endpoints.migrations.0005_support_registers_endpoints"
ADD = "admin:endpoints_endpoint_add"
SECRET = "hunter2-long-secret-value"


@pytest.fixture
def support(client, support_user):
    """Signed in as a member of "Support", with what the migrations give the group."""
    client.force_login(support_user)
    return client


@pytest.fixture
def partner(event_types):
    return PartnerFactory(name="Acme Shop")


def registration(partner, **changes):
    """The add form as a browser posts it: linear retry, one header, two ticked event
    types, the filter data.amount gte 100, no token."""
    data = {
        "partner": partner.pk,
        "name": "Acme orders",
        "url": "https://hooks.acme.example/webhooks",
        "description": "",
        "timeout_seconds": "15",
        "rate_limit_per_second": "",
        "max_in_flight": "10",
        "retry_policy__mode": "fields",
        "retry_policy__strategy": "linear",
        "retry_policy__max_attempts": "4",
        "retry_policy__base_delay": "60",
        "retry_policy__max_delay": "3600",
        "retry_policy__jitter": "0",
        "retry_policy": "{}",
        "headers__mode": "fields",
        "headers__name_0": "X-Partner-Key",
        "headers__value_0": "pk-0123456789abcdef",
        "headers__name_1": "",
        "headers__value_1": "",
        "headers": "{}",
        "event_types__mode": "fields",
        "event_types__pick": ["order.paid", "shipment.moved"],
        "event_types": "[]",
        "filter__mode": "fields",
        "filter__join": "and",
        "filter__path_0": "data.amount",
        "filter__op_0": "gte",
        "filter__value_0": "100",
        "filter__path_1": "",
        "filter__op_1": "eq",
        "filter__value_1": "",
        "filter": "null",
        "token_action": "none",
        "token_value": "",
    }
    data.update(changes)
    return data


def edit(endpoint, **changes):
    """The change form of `endpoint` posted back with `changes` (its own name and URL)."""
    data = registration(endpoint.partner, name=endpoint.name, url=endpoint.url, token_action="keep")
    data.pop("partner")
    data.update(changes)
    return data


def change_url(endpoint):
    return reverse("admin:endpoints_endpoint_change", args=[endpoint.pk])


LINEAR = {"strategy": "linear", "max_attempts": 4, "base_delay": 60, "max_delay": 3600, "jitter": 0}


def test_support_registers_an_endpoint_with_the_structured_form(support, partner):
    assert support.get(reverse(ADD)).status_code == 200
    response = support.post(reverse(ADD), registration(partner))
    assert response.status_code == 302, response.context["adminform"].form.errors
    endpoint = Endpoint.objects.get(name="Acme orders")
    assert endpoint.partner == partner
    assert endpoint.url == "https://hooks.acme.example/webhooks"
    assert endpoint.retry_policy == LINEAR
    assert endpoint.headers == {"X-Partner-Key": "pk-0123456789abcdef"}
    assert endpoint.filter == {"path": "data.amount", "op": "gte", "value": 100}
    assert endpoint.auth_token == ""
    subscriptions = list(
        Subscription.objects.filter(endpoint=endpoint).values_list("event_type", "filter")
    )
    assert subscriptions == [("order.paid", None), ("shipment.moved", None)]
    shown = support.get(response["Location"]).content.decode()
    assert endpoint.signing_secret in shown

    page = support.get(change_url(endpoint)).content.decode()
    assert "pk-0123456789abcdef" not in page and "••••cdef" in page
    assert 'value="order.paid" id="id_event_types__order_paid" checked' in page
    assert "1 min" in page and "2 min" in page and "3 min" in page  # the schedule
    # Shown back in its fields, not as JSON.
    assert '<option value="linear" selected>' in page
    assert 'name="retry_policy__base_delay" id="id_retry_policy__base_delay" value="60"' in page
    assert 'name="retry_policy__mode" value="json" class="wh-json-toggle" checked' not in page


def test_retry_preview_shows_the_schedule_the_workers_policy_gives(support, partner):
    params = {k: v for k, v in registration(partner).items() if k.startswith("retry_policy__")}
    response = support.get(
        reverse("admin:endpoints_endpoint_retry_preview"), params, HTTP_ACCEPT="application/json"
    )
    preview = response.json()
    policy = RetryPolicy.from_dict(LINEAR)

    class Failed:
        status_code, error_kind, headers = 500, None, {}

    now = datetime(2026, 1, 1, tzinfo=UTC)
    expected = [next_delay(policy, n, Failed(), now=now).total_seconds() for n in range(1, 4)]
    assert preview["ok"] and preview["attempts"] == 4
    assert preview["waits"] == expected == [60.0, 120.0, 180.0]
    assert "1 min" in preview["html"] and "3 min" in preview["html"]

    bad = support.get(
        reverse("admin:endpoints_endpoint_retry_preview"),
        {**params, "retry_policy__max_attempts": "99"},
        HTTP_ACCEPT="application/json",
    ).json()
    assert not bad["ok"] and "retry_policy.max_attempts" in bad["error"]
    # Without JavaScript the form posts itself to the preview: a page of its own.
    page = support.post(reverse("admin:endpoints_endpoint_retry_preview"), params)
    assert page.status_code == 200 and "3 min" in page.content.decode()


def test_filter_preview_takes_the_form_as_it_stands(support, partner):
    for amount in (50, 150):
        publish("order.paid", {"amount": amount})
    publish("shipment.moved", {"amount": 500})
    publish("order.refunded", {"amount": 900})
    page = support.post(reverse("admin:endpoints_endpoint_filter_preview"), registration(partner))
    assert b"<strong>2</strong> of 3 would be delivered" in page.content


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"headers__name_0": "Authorization"}, "headers", "Authorization is set by webhookhub"),
        ({"headers__name_0": "webhook-id"}, "headers", "webhook-id is set by webhookhub"),
        ({"url": "not a url"}, "url", "Enter a valid URL"),
        ({"filter__op_0": "in", "filter__value_0": "100"}, "filter", "must be a list for 'in'"),
        ({"filter__op_0": "exists", "filter__value_0": "maybe"}, "filter", "true or false"),
        ({"retry_policy__max_attempts": "0"}, "retry_policy", "retry_policy.max_attempts"),
        ({"retry_policy__base_delay": "soon"}, "retry_policy", "must be a number"),
        ({"retry_policy__max_delay": "10"}, "retry_policy", "must be at least base_delay"),
        ({"event_types__pick": []}, "event_types", "Tick at least one event type"),
        ({"token_action": "set", "token_value": "bad\ntoken"}, "token_value", "control character"),
        ({"token_action": "set", "token_value": ""}, "token_value", "Type the token"),
    ],
)
def test_bad_input_is_refused_on_its_field_and_writes_nothing(
    support, partner, settings, changes, field, words
):
    response = support.post(reverse(ADD), registration(partner, **changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert words in " ".join(errors.get(field, [])), errors
    assert not Endpoint.objects.exists() and not Subscription.objects.exists()
    assert words.replace("'", "&#x27;") in response.content.decode()


def test_private_url_is_refused_on_the_url_field(support, partner, settings):
    settings.WEBHOOKHUB_ALLOW_PRIVATE_URLS = False
    response = support.post(reverse(ADD), registration(partner, url="http://10.0.0.1/hook"))
    assert "private address" in " ".join(response.context["adminform"].form.errors["url"])
    assert not Endpoint.objects.exists()


def test_a_refused_form_is_shown_again_as_typed(support, partner):
    response = support.post(
        reverse(ADD), registration(partner, **{"headers__name_0": "Content-Type"})
    )
    page = response.content.decode()
    assert 'value="Content-Type"' in page and 'value="data.amount"' in page
    assert 'value="shipment.moved" id="id_event_types__shipment_moved" checked' in page


def test_token_generated_at_creation_is_shown_once_after_the_secret(support, partner):
    response = support.post(reverse(ADD), registration(partner, token_action="generate"))
    endpoint = Endpoint.objects.get()
    assert len(endpoint.auth_token) >= 32
    first = support.get(response["Location"]).content.decode()
    assert endpoint.signing_secret in first and endpoint.auth_token not in first
    then = support.get(
        reverse("admin:endpoints_endpoint_token_once", args=[endpoint.pk]), follow=True
    )
    assert endpoint.auth_token in then.content.decode()
    again = support.get(
        reverse("admin:endpoints_endpoint_token_once", args=[endpoint.pk]), follow=True
    )
    assert endpoint.auth_token not in again.content.decode()
    assert endpoint.auth_token not in support.get(change_url(endpoint)).content.decode()


def test_token_typed_at_creation_is_stored_and_sent(support, partner):
    response = support.post(
        reverse(ADD), registration(partner, token_action="set", token_value="partner-given-0042")
    )
    assert response.status_code == 302
    assert Endpoint.objects.get().auth_token == "partner-given-0042"


def test_token_on_an_existing_endpoint_is_typed_generated_and_removed(support, partner, receiver):
    endpoint = make_endpoint(partner, url=receiver.url_for("/hook"), event_types=["order.paid"])
    assert endpoint.auth_token == ""
    support.post(
        change_url(endpoint), edit(endpoint, token_action="set", token_value="typed-token-0001")
    )
    endpoint.refresh_from_db()
    assert endpoint.auth_token == "typed-token-0001"

    response = support.post(change_url(endpoint), edit(endpoint, token_action="generate"))
    endpoint.refresh_from_db()
    assert endpoint.auth_token not in ("", "typed-token-0001")
    shown = support.get(response["Location"]).content.decode()
    assert endpoint.auth_token in shown
    page = support.get(change_url(endpoint)).content.decode()
    assert endpoint.auth_token not in page and "••••" + endpoint.auth_token[-4:] in page

    event = publish("order.paid", {"amount": 150})
    engine.deliver(list(event.deliveries.values_list("pk", flat=True)))
    (request,) = receiver.wait_for(1)
    assert request.headers["authorization"] == f"Bearer {endpoint.auth_token}"

    assert (
        support.post(change_url(endpoint), edit(endpoint, token_action="remove")).status_code == 302
    )
    endpoint.refresh_from_db()
    assert endpoint.auth_token == ""
    assert support.post(change_url(endpoint), edit(endpoint)).status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.auth_token == ""


def test_a_masked_header_value_left_as_is_keeps_the_stored_one(support, partner):
    endpoint = make_endpoint(partner, headers={"X-Password": SECRET, "X-Tenant": "acme"})
    page = support.get(change_url(endpoint)).content.decode()
    assert SECRET not in page and 'value="••••alue"' in page
    response = support.post(
        change_url(endpoint),
        edit(
            endpoint,
            name="renamed",
            headers__name_0="X-Password",
            headers__value_0="••••alue",
            headers__name_1="X-Tenant",
            headers__value_1="typed-again",
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    endpoint.refresh_from_db()
    assert endpoint.name == "renamed"
    assert endpoint.headers == {"X-Password": SECRET, "X-Tenant": "typed-again"}


def test_advanced_json_is_the_same_field_with_the_same_rules(support, partner):
    data = registration(
        partner,
        headers__mode=["fields", "json"],
        headers='{"X-A": "b"}',
        retry_policy__mode=["fields", "json"],
        retry_policy='{"strategy": "fixed", "base_delay": 30, "max_attempts": 3}',
        filter__mode=["fields", "json"],
        filter='{"or": [{"path": "data.a", "op": "eq", "value": 1}, {"and": [{"path": "data.b", "op": "exists", "value": true}]}]}',
        event_types__mode=["fields", "json"],
        event_types='["order.*", {"event_type": "shipment.moved", "filter": {"path": "data.x", "op": "gt", "value": 1}}]',
    )
    assert support.post(reverse(ADD), data).status_code == 302
    endpoint = Endpoint.objects.get()
    assert endpoint.headers == {"X-A": "b"}
    assert endpoint.retry_policy == {"strategy": "fixed", "base_delay": 30, "max_attempts": 3}
    assert endpoint.filter["or"][1] == {"and": [{"path": "data.b", "op": "exists", "value": True}]}
    assert dict(endpoint.subscriptions.values_list("event_type", "filter")) == {
        "order.*": None,
        "shipment.moved": {"path": "data.x", "op": "gt", "value": 1},
    }
    # A nested filter has no rows: the page opens it as JSON.
    page = support.get(change_url(endpoint)).content.decode()
    assert 'name="filter__mode" value="json" class="wh-json-toggle" checked' in page
    # Ticking boxes keeps a subscription's own filter.
    response = support.post(
        change_url(endpoint),
        edit(endpoint, event_types__pick=["shipment.moved", "order.refunded"]),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert dict(endpoint.subscriptions.values_list("event_type", "filter")) == {
        "order.refunded": None,
        "shipment.moved": {"path": "data.x", "op": "gt", "value": 1},
    }
    bad = support.post(
        reverse(ADD),
        registration(
            partner, name="two", headers__mode=["fields", "json"], headers='{"Host": "x"}'
        ),
    )
    assert "Host is set by webhookhub" in " ".join(bad.context["adminform"].form.errors["headers"])


def test_event_types_offer_the_catalog_with_descriptions_and_wildcards(support, partner):
    page = support.get(reverse(ADD)).content.decode()
    for value in ("*", "order.*", "order.paid", "order.refunded", "shipment.*", "shipment.moved"):
        assert f'name="event_types__pick" value="{value}"' in page
    assert '<span class="wh-desc">order.paid</span>' in page  # the fixture's description


def test_support_deletes_an_endpoint_with_its_history(support, partner):
    endpoint = make_endpoint(partner, event_types=["order.paid"], retry_policy={"max_attempts": 1})
    publish("order.paid", {"amount": 1}, partner=partner)
    url = reverse("admin:endpoints_endpoint_delete", args=[endpoint.pk])
    confirm = support.get(url)
    assert confirm.status_code == 200 and "1 delivery" in confirm.content.decode()
    assert support.post(url, {"post": "yes"}).status_code == 302
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()


def test_the_migration_gives_support_the_endpoint_permissions_and_takes_them_back(support):
    migration = import_module(MIGRATION)
    state = MigrationExecutor(connection).loader.project_state(
        ("endpoints", "0005_support_registers_endpoints")
    )
    group = Group.objects.get(name="Support")
    migration.backwards(state.apps, None)
    assert not group.permissions.filter(codename="add_endpoint").exists()
    assert group.permissions.filter(codename="rotate_credentials").exists()
    migration.forwards(state.apps, None)
    codenames = set(group.permissions.values_list("codename", flat=True))
    assert {c for _a, c in migration.SUPPORT_ENDPOINT_PERMISSIONS} <= codenames


@pytest.mark.parametrize(
    "policy",
    [
        {},
        {"max_attempts": 1},
        {"strategy": "exponential", "base_delay": 2.5, "max_delay": 604800, "jitter": 0.15},
        {"strategy": "fixed", "base_delay": 30, "max_attempts": 50},
        {"strategy": "schedule", "schedule": [1, 60, 3600.5], "jitter": 0},
    ],
)
def test_a_stored_retry_policy_is_shown_in_fields_and_posted_back_the_same(policy):
    widget = RetryPolicyWidget()
    parts = widget.to_parts(policy)
    assert parts is not None
    data = {"retry_policy__mode": "fields", **{f"retry_policy__{k}": v for k, v in parts.items()}}
    posted = json.loads(widget.value_from_datadict(data, None, "retry_policy"))
    assert RetryPolicy.from_dict(posted or None) == RetryPolicy.from_dict(policy or None)


@pytest.mark.parametrize(
    "spec",
    [
        None,
        {"path": "data.amount", "op": "gte", "value": 100},
        {"path": "data.code", "op": "eq", "value": "100"},
        {"path": "data.name", "op": "regex", "value": "^a[0-9]+"},
        {
            "or": [
                {"path": "data.tier", "op": "in", "value": ["gold", 2]},
                {"path": "data.vip", "op": "exists", "value": True},
                {"path": "data.note", "op": "contains", "value": "rush"},
            ]
        },
    ],
)
def test_a_stored_filter_is_shown_in_rows_and_posted_back_the_same(spec):
    widget = FilterWidget()
    parts = widget.to_parts(spec)
    data = {"filter__mode": "fields", "filter__join": parts["join"]}
    for n, row in enumerate(parts["rows"]):
        data.update({f"filter__path_{n}": row["path"], f"filter__op_{n}": row["op"]})
        data[f"filter__value_{n}"] = row["value"]
    assert json.loads(widget.value_from_datadict(data, None, "filter")) == spec
