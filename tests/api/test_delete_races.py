"""Finding F10: a PATCH, an action or a test send racing a DELETE of the same endpoint
answers 404 (as if the DELETE came first), never 500, and leaves nothing behind.

The DELETE holds its row lock in another connection while the request runs; the
request's service blocks on that lock and finds the row gone when it is released.
PostgreSQL only: SQLite has no row locks to interleave on.
"""

import threading
import time

import pytest
from django.db import connection, transaction

from deliveries.models import Delivery
from endpoints.models import Endpoint
from endpoints.services import endpoint_delete
from tests.factories import make_endpoint

pytestmark = pytest.mark.django_db(transaction=True)


def delete_while(endpoint, request):
    """Start deleting `endpoint` in another connection, run `request` while the DELETE's
    transaction is still open, then let it commit; returns request's response."""
    locked, release = threading.Event(), threading.Event()

    def deleter():
        try:
            with transaction.atomic():
                endpoint_delete(Endpoint.objects.get(pk=endpoint.pk), by="api:other")
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=deleter)
    thread.start()
    assert locked.wait(10)
    threading.Timer(0.5, release.set).start()  # commit while the request waits on the lock
    started = time.monotonic()
    response = request()
    thread.join(10)
    return response, time.monotonic() - started


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs row locks")
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("patch", "", {"name": "renamed"}),
        ("post", "test/", None),
        ("post", "rotate-secret/", {}),
    ],
)
def test_request_racing_a_delete_of_its_endpoint_is_404(
    partner, partner_api, event_types, receiver, method, path, body
):
    endpoint = make_endpoint(partner=partner, url=receiver.url_for())
    url = f"/api/v1/endpoints/{endpoint.public_id}/{path}"
    response, waited = delete_while(
        endpoint, lambda: getattr(partner_api, method)(url, body, format="json")
    )
    assert response.status_code == 404, response.content
    assert response.json()["detail"]
    assert waited >= 0.4, "the request waited for the DELETE's lock"
    assert not Endpoint.objects.filter(pk=endpoint.pk).exists()
    assert not Delivery.objects.exists() and not receiver.requests
