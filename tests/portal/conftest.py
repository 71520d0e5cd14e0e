"""Portal fixtures: two partners with an endpoint each, and browsers (Django test
clients) signed in to each partner's portal through a real sign-in link."""

from urllib.parse import urlparse

import pytest
from django.test import Client

from portal.services import portal_link_create
from tests.factories import PartnerFactory, make_endpoint


def sign_in_path(partner, **kwargs) -> str:
    _link, url = portal_link_create(partner, by="test", **kwargs)
    return urlparse(url).path


def signed_in_client(partner, *, label="") -> Client:
    client = Client(enforce_csrf_checks=False)
    response = client.post(sign_in_path(partner, label=label))
    assert response.status_code == 302, response.content[:500]
    return client


@pytest.fixture
def acme(db):
    return PartnerFactory(name="Acme", contact_email="ops@acme.example")


@pytest.fixture
def globex(db):
    return PartnerFactory(name="Globex", contact_email="ops@globex.example")


@pytest.fixture
def acme_endpoint(acme, event_types):
    return make_endpoint(acme, name="Acme orders", url="http://127.0.0.1:9/acme")


@pytest.fixture
def globex_endpoint(globex, event_types):
    return make_endpoint(globex, name="Globex orders", url="http://127.0.0.1:9/globex")


@pytest.fixture
def acme_client(acme):
    return signed_in_client(acme, label="alice@acme.example")


@pytest.fixture
def globex_client(globex):
    return signed_in_client(globex, label="bob@globex.example")
