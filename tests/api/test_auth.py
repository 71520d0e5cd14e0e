"""Bearer tokens: hashed, looked up by prefix, refused when revoked or expired, and
`last_used_at` written at most once a minute."""

import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from endpoints.models import ApiToken
from tests.api.conftest import client_for, make_token

pytestmark = pytest.mark.django_db


def test_tokens_are_stored_only_as_hashes(partner_token):
    token = ApiToken.objects.get()
    assert partner_token.startswith("whk_") and token.prefix == partner_token[:12]
    assert partner_token not in {token.key_hash, token.prefix, token.name}
    assert token.key_hash == ApiToken.hash(partner_token)


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authentication credentials were not provided."),
        ("Bearer", "Send the token as `Authorization: Bearer <token>`."),
        ("Basic dXNlcjpwYXNz", "Send the token as `Authorization: Bearer <token>`."),
        ("Bearer not-a-token", "Invalid token."),
        ("Bearer whk_wrongwrongwrongwrongwrongwrongwrongwrong", "Invalid token."),
        ("Bearer a b", "Send the token as `Authorization: Bearer <token>`."),
    ],
)
def test_missing_or_bad_credentials_are_401(db, header, detail):
    client = client_for(None)
    if header:
        client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/events/")
    assert response.status_code == 401
    assert response.json() == {"detail": detail, "errors": {}}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_right_prefix_wrong_secret_is_refused(partner_token):
    forged = partner_token[:12] + "x" * (len(partner_token) - 12)
    assert client_for(forged).get("/api/v1/endpoints/").status_code == 401


def test_a_revoked_token_is_401_at_once(partner_token):
    from endpoints.services import api_tokens_revoke

    assert client_for(partner_token).get("/api/v1/endpoints/").status_code == 200
    assert api_tokens_revoke(ApiToken.objects.all()) == 1
    response = client_for(partner_token).get("/api/v1/endpoints/")
    assert (response.status_code, response.json()["detail"]) == (
        401,
        "This token has been revoked.",
    )


def test_a_token_is_401_once_it_expires_even_while_remembered(partner_token):
    ApiToken.objects.update(expires_at=timezone.now() + timedelta(minutes=1))
    assert client_for(partner_token).get("/api/v1/endpoints/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(minutes=2)):
        response = client_for(partner_token).get("/api/v1/endpoints/")
    assert (response.status_code, response.json()["detail"]) == (401, "This token has expired.")


def test_a_revocation_made_elsewhere_applies_within_the_cache_seconds(partner_token, settings):
    """A conditional UPDATE sends no signal, as a revocation in another process does not."""
    settings.WEBHOOKHUB_API_TOKEN_CACHE_SECONDS = 0.3
    assert client_for(partner_token).get("/api/v1/endpoints/").status_code == 200
    ApiToken.objects.update(revoked_at=timezone.now())
    assert client_for(partner_token).get("/api/v1/endpoints/").status_code == 200, "remembered"
    time.sleep(0.35)
    assert client_for(partner_token).get("/api/v1/endpoints/").status_code == 401


def test_an_inactive_partners_tokens_are_401(partner, partner_token):
    partner.is_active = False
    partner.save()
    assert client_for(partner_token).get("/api/v1/endpoints/").status_code == 401


def test_last_used_at_is_written_at_most_once_a_minute(partner_token):
    api = client_for(partner_token)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        api.get("/api/v1/endpoints/")
        assert ApiToken.objects.get().last_used_at == start
    with time_machine.travel(start + timedelta(seconds=30), tick=False):
        with CaptureQueriesContext(connection) as queries:
            for _ in range(5):
                api.get("/api/v1/endpoints/")
        assert not [q for q in queries if q["sql"].startswith("UPDATE")]
        assert ApiToken.objects.get().last_used_at == start
    later = start + timedelta(seconds=61)
    with time_machine.travel(later, tick=False):
        api.get("/api/v1/endpoints/")
        assert ApiToken.objects.get().last_used_at == later


def test_each_role_gets_a_403_naming_the_role_it_needs(partner, partner_api, publisher_api):
    publish = partner_api.post("/api/v1/events/", {"type": "x", "data": {}}, format="json")
    assert publish.status_code == 403
    assert publish.json() == {"detail": "This needs a publisher token.", "errors": {}}
    create_type = partner_api.post("/api/v1/event-types/", {"name": "x.y"}, format="json")
    assert create_type.status_code == 403
    assert publisher_api.get("/api/v1/deliveries/").status_code == 403


def test_schema_and_docs_need_no_token(client, db):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200


def test_a_publisher_token_cannot_have_a_partner(partner):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        make_token(ApiToken.Role.PUBLISHER, partner)
