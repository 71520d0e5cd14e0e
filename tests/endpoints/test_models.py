"""Secrets at rest, token hashing, and validation that names the field."""

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings

from endpoints.models import ApiToken, Endpoint, Subscription
from endpoints.services import api_token_create, endpoint_create, endpoint_rotate_secret
from tests.factories import PartnerFactory, make_endpoint

pytestmark = pytest.mark.django_db


def raw_row(table: str, pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])
        return " ".join(str(v) for v in cursor.fetchone())


def test_signing_secret_bearer_token_and_header_values_are_unreadable_in_the_table(event_types):
    endpoint = make_endpoint(
        auth_token="bearer-token-value-123456", headers={"X-Password": "hunter2-long-secret"}
    )
    assert endpoint.signing_secret.startswith("whsec_")
    rotated = endpoint_rotate_secret(endpoint, by="test")
    row = raw_row("endpoints_endpoint", endpoint.pk)
    assert rotated not in row
    assert endpoint.signing_secret[6:] not in row and "whsec_" not in row
    assert "bearer-token-value-123456" not in row
    assert "hunter2" not in row and "X-Password" not in row
    assert row.count("fernet:") == 5  # the ed25519 secret key (whsk_) too
    reloaded = Endpoint.objects.get(pk=endpoint.pk)
    assert reloaded.signing_secret == rotated
    assert reloaded.auth_token == "bearer-token-value-123456"
    assert reloaded.headers == {"X-Password": "hunter2-long-secret"}
    assert reloaded.active_secrets()[1] == endpoint.signing_secret


def test_secrets_never_appear_in_repr_or_str(event_types):
    endpoint = make_endpoint(
        auth_token="bearer-token-value-123456", headers={"X-Password": "hunter2-long-secret"}
    )
    for text in (repr(endpoint), str(endpoint)):
        assert endpoint.signing_secret not in text and "bearer-token" not in text
        assert "hunter2" not in text
    assert endpoint.public_id.startswith("ep_")


def test_api_token_is_stored_only_as_a_hash():
    partner = PartnerFactory()
    token, raw = api_token_create(role=ApiToken.Role.PARTNER, partner=partner, name="ci")
    assert raw.startswith("whk_") and raw.startswith(token.prefix)
    row = raw_row("endpoints_apitoken", token.pk)
    assert raw not in row and raw[len(token.prefix) :] not in row
    assert token.key_hash == ApiToken.hash(raw)


def test_partner_token_needs_a_partner_and_publisher_token_has_none():
    with pytest.raises(ValidationError, match="needs a partner"):
        api_token_create(role=ApiToken.Role.PARTNER)
    with pytest.raises(ValidationError, match="not tied to a partner"):
        api_token_create(role=ApiToken.Role.PUBLISHER, partner=PartnerFactory())
    assert ApiToken.objects.count() == 0


@override_settings(WEBHOOKHUB_ALLOW_PRIVATE_URLS=False)
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"url": "http://127.0.0.1/hook"}, "url", "loopback"),
        ({"url": "gopher://x.example/"}, "url", "http"),
        ({"headers": {"Webhook-Signature": "x"}}, "headers", "cannot be overridden"),
        ({"headers": {"Authorization": "x"}}, "headers", "cannot be overridden"),
        ({"headers": {"X-Bad": "line\r\nbreak"}}, "headers", "X-Bad contains a control character"),
        ({"headers": {"Keep-Alive": "timeout=5"}}, "headers", "cannot be overridden"),
        ({"headers": {"X-Bad": "caf\u00e9"}}, "headers", "X-Bad contains U+00E9"),
        ({"auth_token": "tok\x0ben"}, "auth_token", "Authorization (auth_token) contains"),
        ({"headers": {"bad name": "x"}}, "headers", "not a valid header name"),
        ({"retry_policy": {"strategy": "sometimes"}}, "retry_policy", "retry_policy.strategy"),
        ({"retry_policy": {"max_attempts": 0}}, "retry_policy", "retry_policy.max_attempts"),
        ({"filter": {"path": "data.x", "op": "between"}}, "filter", "filter.op"),
        ({"timeout_seconds": 0}, "timeout_seconds", "greater than or equal to 1"),
        ({"event_types": ["order.nope"]}, "event_type", "Unknown event type"),
        ({"event_types": ["Order Paid"]}, "event_type", "not an event type name"),
        ({"event_types": [{"event_type": "order.*", "filter": {"or": []}}]}, "filter", "filter.or"),
    ],
)
def test_bad_endpoint_input_names_the_field_and_writes_nothing(event_types, fields, field, message):
    fields = {"url": "https://hooks.partner.example/wh", **fields}
    with pytest.raises(ValidationError) as exc:
        endpoint_create(PartnerFactory(), name="x", by="test", **fields)
    assert field in exc.value.message_dict, exc.value.message_dict
    assert message in " ".join(exc.value.message_dict[field])
    assert Endpoint.objects.count() == 0 and Subscription.objects.count() == 0


def test_rotation_grace_is_bounded(event_types):
    from datetime import timedelta

    endpoint = make_endpoint()
    with pytest.raises(ValidationError, match="between 0 and 7 days"):
        endpoint_rotate_secret(endpoint, by="test", grace=timedelta(days=8))


def test_encryption_key_rotation_reencrypts_with_the_new_key(event_types, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    endpoint = make_endpoint(
        auth_token="bearer-token-value-123456", headers={"X-Password": "hunter2-long-secret"}
    )
    old_key = settings.WEBHOOKHUB_ENCRYPTION_KEY
    old_keys = old_key if isinstance(old_key, list) else [old_key]
    new_key = Fernet.generate_key().decode()
    settings.WEBHOOKHUB_ENCRYPTION_KEY = [new_key, *old_keys]
    call_command("rotate_encryption_key")
    settings.WEBHOOKHUB_ENCRYPTION_KEY = [new_key]  # the old key is gone now
    reloaded = Endpoint.objects.get(pk=endpoint.pk)
    assert reloaded.signing_secret == endpoint.signing_secret
    assert reloaded.auth_token == "bearer-token-value-123456"
    assert reloaded.headers == {"X-Password": "hunter2-long-secret"}


def test_expired_rotated_secrets_are_purged(event_types):
    from datetime import timedelta

    import time_machine
    from django.utils import timezone

    from endpoints.services import endpoints_purge_expired_secrets

    endpoint = make_endpoint()
    endpoint_rotate_secret(endpoint, by="test", grace=timedelta(hours=1))
    assert endpoints_purge_expired_secrets() == 0
    with time_machine.travel(timezone.now() + timedelta(hours=2)):
        assert endpoints_purge_expired_secrets() == 1
    endpoint.refresh_from_db()
    assert endpoint.previous_secrets is None and len(endpoint.active_secrets()) == 1
