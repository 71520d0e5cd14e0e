"""The endpoint page shows the signature scheme and the public key (whpk_…), read-only;
never the ed25519 secret key."""

import pytest
from django.urls import reverse

from endpoints.services import endpoint_rotate_key
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("who", ["support_user", "viewer_user"])
def test_endpoint_page_shows_scheme_and_public_key_but_not_the_secret_key(
    client, event_types, request, who
):
    client.force_login(request.getfixturevalue(who))
    endpoint = make_endpoint(signature_scheme="both")
    endpoint_rotate_key(endpoint, by="test")
    endpoint.refresh_from_db()
    page = client.get(reverse("admin:endpoints_endpoint_change", args=[endpoint.pk]))
    html = page.content.decode()
    assert page.status_code == 200
    assert endpoint.public_key in html
    assert "Both (v1 and v1a)" in html
    assert 'name="public_key"' not in html and 'name="signature_scheme"' not in html
    assert "whsk_" not in html and endpoint.signing_key[5:] not in html
    assert endpoint.previous_keys[0]["secret_key"][5:] not in html


def test_the_add_page_has_no_key_yet(client, event_types, support_user):
    client.force_login(support_user)
    page = client.get(reverse("admin:endpoints_endpoint_add"))
    assert page.status_code == 200 and "whpk_" not in page.content.decode()
