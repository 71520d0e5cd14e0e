"""Every error under /api/ is the API's JSON, even for a path no URL pattern matches
(issue 11, F11: ids with control characters got Django's HTML 404)."""

import pytest

from events.api.views import EventViewSet
from tests.api.test_errors import assert_error

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events/evt_%01/",
        "/api/v1/events/evt_%0A/",
        "/api/v1/events/evt_%0D%0A/",
        "/api/v1/endpoints/ep_%0A/test/",
        "/api/v1/deliveries/%0A",
        "/api/v1/event-types/order.paid%0A/",
        "/api/%0A",
        "/api/v1/%0A/%7F",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_ids_with_control_characters_are_json_404s(partner_api, path, method):
    response = partner_api.generic(method, path)
    assert response["Content-Type"] == "application/json"
    assert_error(response, 404)


def test_other_paths_keep_djangos_pages(client):
    response = client.get("/nothing-here%0A/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_unhandled_error_under_api_is_a_json_500(partner_api, monkeypatch):
    def broken(self, request, *args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(EventViewSet, "list", broken)
    partner_api.raise_request_exception = False
    response = partner_api.get("/api/v1/events/")
    assert response.status_code == 500
    assert response.json() == {"detail": "Server error.", "errors": {}}
