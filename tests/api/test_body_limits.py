"""Bodies over the API's limits are the API's 413 JSON at any size, refused on their
Content-Length without being read, and nothing is logged as an error (issue 11, F5:
past 2.5 MB Django answered its HTML 400 and logged a RequestDataTooBig traceback)."""

import io
import json
import logging

import pytest
from django.conf import settings
from django.test import override_settings

from events.models import Event
from tests.api.conftest import client_for
from tests.api.test_errors import assert_error

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


class CountingInput(io.RawIOBase):
    """A request stream of `size` bytes that counts what is read from it."""

    def __init__(self, size: int):
        self.size = size
        self.read_bytes = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        n = min(len(buffer), self.size - self.read_bytes)
        buffer[:n] = b" " * n
        self.read_bytes += n
        return n


def errors_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events/batch/"])
@pytest.mark.parametrize("size", [3 * MB, 30 * MB])
def test_a_body_over_the_limit_is_the_api_413_and_no_error_is_logged(
    publisher_api, event_types, caplog, path, size
):
    item = {"type": "order.paid", "data": {"blob": "x" * size}}
    raw = json.dumps([item] if path.endswith("batch/") else item).encode()
    with caplog.at_level(logging.INFO):
        response = publisher_api.generic("POST", path, raw, "application/json")
    limit = (
        settings.WEBHOOKHUB_API_MAX_BATCH_BYTES
        if path.endswith("batch/")
        else settings.WEBHOOKHUB_MAX_PAYLOAD_BYTES
    )
    error = assert_error(response, 413)
    assert str(limit) in error["detail"]
    assert errors_logged(caplog) == []
    assert not Event.objects.exists()


@pytest.mark.parametrize("path", ["/api/v1/events/", "/api/v1/events/batch/"])
def test_an_oversized_body_is_refused_without_being_read(publisher_api, path):
    stream = CountingInput(30 * MB)
    response = publisher_api.generic(
        "POST",
        path,
        b"x",
        "application/json",
        **{"wsgi.input": stream, "CONTENT_LENGTH": str(stream.size)},
    )
    assert_error(response, 413)
    assert stream.read_bytes == 0


def test_an_oversized_body_is_refused_before_the_token_is_looked_at():
    response = client_for(None).generic(
        "POST", "/api/v1/events/", b"x" * (3 * MB), "application/json"
    )
    assert_error(response, 413)


def test_a_lying_small_content_length_reads_only_that_many_bytes(publisher_api, event_types):
    event = json.dumps({"type": "order.paid", "data": {"n": 1}}).encode()
    raw = event + b"x" * (3 * MB)  # the rest is never read
    response = publisher_api.generic(
        "POST", "/api/v1/events/", raw, "application/json", CONTENT_LENGTH=str(len(event))
    )
    assert response.status_code == 201, response.content
    assert Event.objects.get().payload == {"n": 1}
    truncated = publisher_api.generic(
        "POST", "/api/v1/events/", raw, "application/json", CONTENT_LENGTH="10"
    )
    assert_error(truncated, 400)


def test_a_lying_large_content_length_is_a_413_without_waiting_for_the_body(publisher_api):
    response = publisher_api.generic(
        "POST", "/api/v1/events/", b"{}", "application/json", CONTENT_LENGTH=str(30 * MB)
    )
    assert_error(response, 413)


def test_bodies_under_the_limits_are_still_taken(publisher_api, event_types):
    data = {"blob": "x" * (settings.WEBHOOKHUB_MAX_PAYLOAD_BYTES - 200)}
    single = publisher_api.post("/api/v1/events/", {"type": "order.paid", "data": data})
    assert single.status_code == 201, single.content
    batch = [{"type": "order.paid", "data": data}] * 3  # over the single limit, under batch
    many = publisher_api.post("/api/v1/events/batch/", batch)
    assert many.status_code == 201, many.content


def test_django_reads_no_body_larger_than_the_largest_api_limit():
    largest = max(settings.WEBHOOKHUB_API_MAX_BATCH_BYTES, settings.WEBHOOKHUB_MAX_PAYLOAD_BYTES)
    django_limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert django_limit == largest


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_djangos_own_refusal_is_the_api_413_too_and_not_logged_as_an_error(
    publisher_api, event_types, caplog
):
    """Should Django's limit ever be the smaller one, its RequestDataTooBig is a 413."""
    raw = json.dumps({"type": "order.paid", "data": {"blob": "x" * 5000}}).encode()
    with caplog.at_level(logging.INFO):
        response = publisher_api.generic("POST", "/api/v1/events/", raw, "application/json")
    error = assert_error(response, 413)
    assert "1000" in error["detail"]
    assert errors_logged(caplog) == []
