"""Where sign-in links come from: the command, the API (publisher tokens) and the
admin's partner page (its own permission; copy, or e-mail to the contact)."""

from io import StringIO
from urllib.parse import urlparse

import pytest
from django.contrib.auth.models import Permission, User
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client

from endpoints.models import ApiToken
from portal.models import PortalLink
from tests.api.conftest import client_for, make_token

pytestmark = pytest.mark.django_db


# --- manage.py portal_link --------------------------------------------------------------


def test_command_prints_the_link_alone_on_its_last_line(acme, settings):
    settings.WEBHOOKHUB_PORTAL_BASE_URL = "https://hooks.example.com"
    out = StringIO()
    call_command("portal_link", "Acme", "--minutes", "10", stdout=out)
    url = out.getvalue().strip().splitlines()[-1]
    assert url.startswith("https://hooks.example.com/portal/sign-in/wpl_")
    link = PortalLink.objects.get()
    assert link.partner == acme and link.created_by == "command:portal_link"
    assert 9 * 60 < (link.expires_at - link.created_at).total_seconds() <= 10 * 60
    response = Client().post(urlparse(url).path)
    assert response.status_code == 302
    # The audit trail has it, on the partner, with who made it (never the token).
    from audit.models import Action, AuditEntry

    entry = AuditEntry.objects.get(action=Action.PORTAL_LINK_CREATED)
    assert (entry.actor, entry.object_id, entry.partner_id) == (
        "command:portal_link",
        acme.public_id,
        acme.pk,
    )
    assert entry.details["minutes"] == 10 and "wpl_" not in str(entry.details)


def test_command_takes_the_partner_id(acme):
    out = StringIO()
    call_command("portal_link", acme.public_id, stdout=out)
    assert "/portal/sign-in/" in out.getvalue().splitlines()[-1]


def test_command_refuses_an_unknown_partner_and_bad_minutes(acme):
    with pytest.raises(CommandError, match="no partner"):
        call_command("portal_link", "Nobody", stdout=StringIO())
    with pytest.raises(CommandError, match="minutes"):
        call_command("portal_link", "Acme", "--minutes", "0", stdout=StringIO())
    assert not PortalLink.objects.exists()


# --- POST /api/v1/portal-links/ ---------------------------------------------------------


def test_api_publisher_gets_a_link(acme):
    client = client_for(make_token(ApiToken.Role.PUBLISHER))
    response = client.post(
        "/api/v1/portal-links/", {"partner": acme.public_id, "minutes": 15}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {"url", "expires_at"}
    assert body["url"].startswith("http://testserver/portal/sign-in/wpl_")
    link = PortalLink.objects.get()
    assert link.partner == acme and link.created_by.startswith("api:whk_")
    assert Client().post(urlparse(body["url"]).path).status_code == 302


def test_api_refuses_a_bad_partner_and_bad_minutes(acme):
    client = client_for(make_token(ApiToken.Role.PUBLISHER))
    for payload, field in (
        ({"partner": "prt_nope"}, "partner"),
        ({}, "partner"),
        ({"partner": acme.public_id, "minutes": 0}, "minutes"),
        ({"partner": acme.public_id, "minutes": "5"}, "minutes"),
        ({"partner": acme.public_id, "extra": 1}, "extra"),
    ):
        response = client.post("/api/v1/portal-links/", payload, format="json")
        assert response.status_code == 400, payload
        assert field in response.json()["errors"], response.json()
    acme.is_active = False
    acme.save()
    response = client.post("/api/v1/portal-links/", {"partner": acme.public_id}, format="json")
    assert response.status_code == 400 and "partner" in response.json()["errors"]
    assert not PortalLink.objects.exists()


def test_api_partner_token_is_forbidden(acme):
    client = client_for(make_token(ApiToken.Role.PARTNER, acme))
    response = client.post("/api/v1/portal-links/", {"partner": acme.public_id}, format="json")
    assert response.status_code == 403
    assert client_for(None).post("/api/v1/portal-links/", {}, format="json").status_code == 401
    assert not PortalLink.objects.exists()


# --- the admin's partner page -----------------------------------------------------------


@pytest.fixture
def staff(db):
    from tests.admin.conftest import ensure_permissions

    ensure_permissions()
    user = User.objects.create_user("sam", password="pw-for-tests", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_partner"))
    client = Client()
    client.force_login(user)
    return user, client


def grant_portal_links(user):
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="portal", codename="send_portal_link")
    )


def test_support_group_may_create_portal_links(db):
    from django.contrib.auth.models import Group

    group = Group.objects.get(name="Support")
    assert group.permissions.filter(
        content_type__app_label="portal", codename="send_portal_link"
    ).exists()


def test_admin_buttons_need_their_permission(staff, acme):
    user, client = staff
    page = client.get(f"/admin/endpoints/partner/{acme.pk}/change/")
    assert page.status_code == 200 and b"action-portal-link" not in page.content
    url = f"/admin/endpoints/partner/{acme.pk}/portal-link/"
    assert client.post(url, {"action": "copy", "minutes": 30}).status_code == 403
    assert not PortalLink.objects.exists()
    grant_portal_links(user)
    page = client.get(f"/admin/endpoints/partner/{acme.pk}/change/")
    assert b"action-portal-link" in page.content and b"action-portal-email" in page.content


def test_admin_copy_portal_link_shows_it_once(staff, acme):
    user, client = staff
    grant_portal_links(user)
    url = f"/admin/endpoints/partner/{acme.pk}/portal-link/"
    assert client.get(url + "?action=copy").status_code == 200
    response = client.post(url, {"action": "copy", "minutes": 30}, follow=True)
    assert response.status_code == 200
    link = PortalLink.objects.get()
    assert link.created_by == "admin:sam" and link.partner == acme
    content = response.content.decode()
    assert "/portal/sign-in/wpl_" in content
    raw = content.split("/portal/sign-in/")[1].split("/")[0]
    assert PortalLink.hash(raw) == link.token_hash


def test_admin_email_portal_link_to_the_contact(staff, acme):
    user, client = staff
    grant_portal_links(user)
    url = f"/admin/endpoints/partner/{acme.pk}/portal-link/"
    response = client.post(url, {"action": "email", "minutes": 60})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["ops@acme.example"]
    assert "/portal/sign-in/wpl_" in message.body
    raw = message.body.split("/portal/sign-in/")[1].split("/")[0]
    link = PortalLink.objects.get()
    assert PortalLink.hash(raw) == link.token_hash and link.label == "ops@acme.example"
    assert "Hello Acme" in message.body  # the English half; the Korean one comes first


def test_admin_email_needs_a_contact_address(staff, acme):
    user, client = staff
    grant_portal_links(user)
    acme.contact_email = ""
    acme.save()
    url = f"/admin/endpoints/partner/{acme.pk}/portal-link/"
    response = client.post(url, {"action": "email", "minutes": 60})
    assert response.status_code == 200 and b"no contact e-mail" in response.content
    assert not mail.outbox and not PortalLink.objects.exists()
