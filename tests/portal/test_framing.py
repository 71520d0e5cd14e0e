"""Framing: refused unless the operator lists the origins that may frame the portal."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/portal/", "/portal/sign-in/wpl_x/"])
def test_portal_refuses_framing_by_default(path):
    response = Client().get(path)
    assert response["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response["X-Frame-Options"] == "DENY"


def test_portal_signed_in_pages_refuse_framing_by_default(acme_client):
    response = acme_client.get("/portal/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert response["X-Frame-Options"] == "DENY"


def test_configured_origins_may_frame_the_portal(acme_client, settings):
    settings.WEBHOOKHUB_PORTAL_FRAME_ANCESTORS = [
        "https://app.example.com",
        "https://www.example.com",
    ]
    response = acme_client.get("/portal/")
    assert response["Content-Security-Policy"] == (
        "frame-ancestors https://app.example.com https://www.example.com"
    )
    assert "X-Frame-Options" not in response


def test_the_admin_still_refuses_framing(settings, db):
    settings.WEBHOOKHUB_PORTAL_FRAME_ANCESTORS = ["https://app.example.com"]
    assert Client().get("/admin/login/")["X-Frame-Options"] == "DENY"
