"""Sign-in links: single use, short-lived, stored hashed; the session they start is for
one partner and ends after the idle and absolute limits."""

from datetime import timedelta
from urllib.parse import urlparse

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from portal.models import PortalLink
from portal.services import portal_link_create
from tests.portal.conftest import sign_in_path

pytestmark = pytest.mark.django_db


def test_valid_link_asks_to_continue_then_signs_in_for_its_partner(acme):
    path = sign_in_path(acme, label="alice@acme.example")
    client = Client()
    page = client.get(path)
    assert page.status_code == 200 and b'id="continue"' in page.content
    assert PortalLink.objects.get().used_at is None  # looking at it does not use it up
    response = client.post(path)
    assert response.status_code == 302 and response["Location"] == "/portal/"
    home = client.get("/portal/")
    assert home.status_code == 200
    assert b"Acme" in home.content and b"Register webhook" in home.content
    assert PortalLink.objects.get().used_at is not None


def test_link_is_stored_hashed(acme):
    link, url = portal_link_create(acme, by="test")
    raw = urlparse(url).path.rstrip("/").rsplit("/", 1)[-1]
    assert raw.startswith("wpl_") and len(raw) > 40
    row = PortalLink.objects.values().get(pk=link.pk)
    assert raw not in str(row)
    assert row["token_hash"] == PortalLink.hash(raw)


def test_reused_link_is_refused_with_a_clear_page(acme):
    path = sign_in_path(acme)
    assert Client().post(path).status_code == 302
    for method in ("get", "post"):
        again = getattr(Client(), method)(path)
        assert again.status_code == 403
        assert b"already been used" in again.content
        assert b'data-reason="used"' in again.content


def test_expired_link_is_refused_with_a_clear_page(acme):
    path = sign_in_path(acme, minutes=5)
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        response = Client().post(path)
    assert response.status_code == 403 and b"has expired" in response.content
    assert PortalLink.objects.get().used_at is None


def test_link_of_a_deactivated_partner_is_refused(acme):
    path = sign_in_path(acme)
    acme.is_active = False
    acme.save()
    response = Client().post(path)
    assert response.status_code == 403 and b"deactivated" in response.content


def test_unknown_link_is_refused(db):
    response = Client().get("/portal/sign-in/wpl_not-a-real-token/")
    assert response.status_code == 403 and b"not valid" in response.content


def test_no_link_for_an_inactive_partner(acme):
    from django.core.exceptions import ValidationError

    acme.is_active = False
    acme.save()
    with pytest.raises(ValidationError):
        portal_link_create(acme, by="test")


def test_portal_without_a_session_says_how_to_sign_in(db):
    response = Client().get("/portal/")
    assert response.status_code == 403 and b"sign-in link" in response.content


def test_session_ends_after_idle_minutes(acme_client, settings):
    settings.WEBHOOKHUB_PORTAL_IDLE_MINUTES = 60
    with time_machine.travel(timezone.now() + timedelta(minutes=30)):
        assert acme_client.get("/portal/").status_code == 200
    with time_machine.travel(timezone.now() + timedelta(minutes=95)):
        response = acme_client.get("/portal/")
    assert response.status_code == 403 and b"expired" in response.content


def test_session_ends_after_max_hours_even_when_used(acme_client, settings):
    settings.WEBHOOKHUB_PORTAL_MAX_HOURS = 2
    start = timezone.now()
    for minutes in (50, 100):
        with time_machine.travel(start + timedelta(minutes=minutes)):
            assert acme_client.get("/portal/").status_code == 200
    with time_machine.travel(start + timedelta(minutes=125)):
        assert acme_client.get("/portal/").status_code == 403


def test_session_ends_when_the_partner_is_deactivated(acme_client, acme):
    acme.is_active = False
    acme.save()
    assert acme_client.get("/portal/").status_code == 403


def test_sign_out(acme_client):
    response = acme_client.post("/portal/sign-out/")
    assert response.status_code == 200 and b"signed out" in response.content
    assert acme_client.get("/portal/").status_code == 403


def test_sign_in_needs_csrf(acme):
    path = sign_in_path(acme)
    client = Client(enforce_csrf_checks=True)
    assert client.post(path).status_code == 403
    assert PortalLink.objects.get().used_at is None
