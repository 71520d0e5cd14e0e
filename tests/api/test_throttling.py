"""Throttling per token and scope: 429 with Retry-After, budgets kept apart."""

import contextlib
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import override_settings
from rest_framework.settings import api_settings

from endpoints.models import ApiToken
from tests.api.conftest import client_for, make_token
from webhookhub.api.throttling import parse_rate

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def rates(**scopes):
    """These rates, at a frozen instant in the middle of a minute (no window edge)."""
    merged = {**api_settings.user_settings, "DEFAULT_THROTTLE_RATES": scopes}
    with (
        override_settings(REST_FRAMEWORK=merged),
        time_machine.travel(datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC), tick=False),
    ):
        yield


def test_over_the_read_rate_is_429_with_retry_after(partner, partner_api):
    with rates(read="3/min", write="100/min", publish="100/min"):
        statuses = [partner_api.get("/api/v1/endpoints/").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = partner_api.get("/api/v1/endpoints/")
        assert response.status_code == 429
        assert response["Retry-After"] == "30"
        assert response.json()["detail"].startswith("Request was throttled")
        assert response.json()["errors"] == {}
        # Another token of the same partner has its own budget...
        other = client_for(make_token(ApiToken.Role.PARTNER, partner))
        assert other.get("/api/v1/endpoints/").status_code == 200
        # ...and writes are a separate scope.
        created = partner_api.post(
            "/api/v1/endpoints/", {"name": "a", "url": "https://a.example.com/"}, format="json"
        )
        assert created.status_code == 201


def test_publish_has_its_own_scope(publisher_api, event_types):
    with rates(read="1/min", write="1/min", publish="2/s"):
        body = {"type": "order.paid", "data": {}}
        codes = [
            publisher_api.post("/api/v1/events/", body, format="json").status_code for _ in range(3)
        ]
        assert codes == [201, 201, 429]
        assert publisher_api.get("/api/v1/event-types/").status_code == 200


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [("10/s", (10, 1)), ("5/min", (5, 60)), ("2/hour", (2, 3600)), ("1/day", (1, 86400))],
)
def test_rates_read_from_the_environment_format(rate, parsed):
    assert parse_rate(rate) == parsed


def test_a_bad_rate_is_a_clear_error():
    with pytest.raises(ValueError, match="N/s, N/min"):
        parse_rate("lots")
