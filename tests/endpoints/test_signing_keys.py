"""An endpoint's ed25519 key pair: made with the endpoint, the secret key unreadable in
the table, what signs per scheme, rotation with the grace of secrets, purging."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from audit.models import Action, AuditEntry
from deliveries.signing import public_key_for
from endpoints.models import Endpoint
from endpoints.services import (
    endpoint_rotate_key,
    endpoint_update,
    endpoints_purge_expired_secrets,
)
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db


def raw_row(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM endpoints_endpoint WHERE id = %s", [pk])
        return " ".join(str(v) for v in cursor.fetchone())


def test_a_new_endpoint_has_a_key_pair_with_the_secret_key_encrypted(event_types):
    endpoint = make_endpoint()
    assert endpoint.signature_scheme == Endpoint.SignatureScheme.HMAC
    assert endpoint.signing_key.startswith("whsk_") and endpoint.public_key.startswith("whpk_")
    assert public_key_for(endpoint.signing_key) == endpoint.public_key
    row = raw_row(endpoint.pk)
    assert "whsk_" not in row and endpoint.signing_key[5:] not in row
    assert endpoint.public_key in row, "the public key is not a secret"
    assert endpoint.signing_key not in repr(endpoint) + str(endpoint)


@pytest.mark.parametrize(
    ("scheme", "signs_v1", "signs_v1a"),
    [("hmac", True, False), ("ed25519", False, True), ("both", True, True)],
)
def test_what_signs_follows_the_scheme(event_types, scheme, signs_v1, signs_v1a):
    endpoint = make_endpoint(signature_scheme=scheme)
    secrets, keys = Endpoint.objects.get(pk=endpoint.pk).signing_credentials()
    assert secrets == ([endpoint.signing_secret] if signs_v1 else [])
    assert keys == ([endpoint.signing_key] if signs_v1a else [])


def test_an_unknown_scheme_is_refused_on_its_field(event_types):
    endpoint = make_endpoint()
    with pytest.raises(ValidationError) as caught:
        endpoint_update(endpoint, by="test", signature_scheme="rsa")
    assert "signature_scheme" in caught.value.message_dict
    assert Endpoint.objects.get(pk=endpoint.pk).signature_scheme == "hmac"


def test_switching_the_scheme_is_audited(event_types):
    endpoint = make_endpoint()
    endpoint_update(endpoint, by="api:test", signature_scheme="both")
    entry = AuditEntry.objects.filter(action=Action.ENDPOINT_UPDATED).latest("id")
    assert entry.details["changed"] == ["signature_scheme"] and entry.actor == "api:test"


def test_rotation_keeps_the_old_key_signing_through_the_grace_only(event_types):
    endpoint = make_endpoint(signature_scheme="ed25519")
    old_secret_key, old_public_key = endpoint.signing_key, endpoint.public_key
    new_public_key = endpoint_rotate_key(endpoint, by="admin:sam", grace=timedelta(hours=1))
    endpoint.refresh_from_db()
    assert new_public_key == endpoint.public_key != old_public_key
    assert public_key_for(endpoint.signing_key) == new_public_key
    assert endpoint.signing_credentials()[1] == [endpoint.signing_key, old_secret_key]
    assert [k["public_key"] for k in endpoint.previous_keys_in_force()] == [old_public_key]
    assert "whsk_" not in raw_row(endpoint.pk)
    entry = AuditEntry.objects.get(action=Action.KEY_ROTATED)
    assert entry.actor == "admin:sam" and entry.details["grace_seconds"] == 3600
    assert entry.details["public_key"] == new_public_key

    later = timezone.now() + timedelta(hours=2)
    assert endpoint.signing_credentials(later)[1] == [endpoint.signing_key]
    assert endpoints_purge_expired_secrets() == 0
    with time_machine.travel(later):
        assert endpoints_purge_expired_secrets() == 1
    endpoint.refresh_from_db()
    assert endpoint.previous_keys is None and endpoint.public_key == new_public_key


def test_rotation_without_grace_drops_the_old_key_at_once(event_types):
    endpoint = make_endpoint(signature_scheme="both")
    endpoint_rotate_key(endpoint, by="test", grace=timedelta(0))
    endpoint.refresh_from_db()
    assert endpoint.previous_keys is None
    assert endpoint.signing_credentials()[1] == [endpoint.signing_key]


@pytest.mark.parametrize("grace", [timedelta(seconds=-1), timedelta(days=7, seconds=1)])
def test_rotation_grace_is_bounded(event_types, grace):
    endpoint = make_endpoint()
    with pytest.raises(ValidationError):
        endpoint_rotate_key(endpoint, by="test", grace=grace)
    assert Endpoint.objects.get(pk=endpoint.pk).public_key == endpoint.public_key


def test_encryption_key_rotation_reencrypts_the_secret_keys_too(event_types, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    endpoint = make_endpoint(signature_scheme="ed25519")
    endpoint_rotate_key(endpoint, by="test")
    endpoint.refresh_from_db()
    old_keys = settings.WEBHOOKHUB_ENCRYPTION_KEY
    old_keys = old_keys if isinstance(old_keys, list) else [old_keys]
    new_key = Fernet.generate_key().decode()
    settings.WEBHOOKHUB_ENCRYPTION_KEY = [new_key, *old_keys]
    call_command("rotate_encryption_key")
    settings.WEBHOOKHUB_ENCRYPTION_KEY = [new_key]  # the old key is gone now
    reloaded = Endpoint.objects.get(pk=endpoint.pk)
    assert reloaded.signing_key == endpoint.signing_key
    assert reloaded.previous_keys == endpoint.previous_keys


def test_secret_keys_never_reach_a_log_line():
    from webhookhub.logs import redact

    secret_key, public_key = "whsk_" + "A" * 43 + "=", "whpk_" + "B" * 43 + "="
    line = redact(f"signing with {secret_key} for {public_key}")
    assert secret_key not in line and "whsk_***" in line
    assert public_key in line, "a public key is not a secret"
