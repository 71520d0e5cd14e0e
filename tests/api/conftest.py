"""API test fixtures: partners, real tokens (created by the service, hashed in the
database) and clients that send them as `Authorization: Bearer …`."""

import pytest
from django.conf import settings
from django.core.cache import caches
from rest_framework.test import APIClient

from endpoints.models import ApiToken
from endpoints.services import api_token_create
from tests.factories import PartnerFactory
from tests.queue import run_queue  # noqa: F401  (used by tests importing it from here)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fuzz: Schemathesis against the OpenAPI schema (bounded, ~1 minute)"
    )


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    caches[settings.WEBHOOKHUB_API_THROTTLE_CACHE].clear()
    yield
    caches[settings.WEBHOOKHUB_API_THROTTLE_CACHE].clear()


def make_token(role: str, partner=None) -> str:
    """A real API token (as `create_api_token` makes them); returns the raw value."""
    _, raw = api_token_create(role=role, partner=partner, name=f"{role} test", by="test")
    return raw


def client_for(raw: str | None) -> APIClient:
    client = APIClient()
    if raw:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def partner(db):
    return PartnerFactory(name="Acme")


@pytest.fixture
def other_partner(db):
    return PartnerFactory(name="Globex")


@pytest.fixture
def partner_token(partner) -> str:
    return make_token(ApiToken.Role.PARTNER, partner)


@pytest.fixture
def publisher_token(db) -> str:
    return make_token(ApiToken.Role.PUBLISHER)


@pytest.fixture
def partner_api(partner_token) -> APIClient:
    return client_for(partner_token)


@pytest.fixture
def other_api(other_partner) -> APIClient:
    return client_for(make_token(ApiToken.Role.PARTNER, other_partner))


@pytest.fixture
def publisher_api(publisher_token) -> APIClient:
    return client_for(publisher_token)
