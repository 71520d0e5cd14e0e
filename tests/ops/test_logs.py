"""Structured logs: JSON lines with the delivery's ids, readable lines locally, no secrets."""

import json
import logging

import pytest
from django.conf import settings

from events.services import publish
from tests.factories import make_endpoint
from tests.ops.conftest import run_queue
from webhookhub.logs import PlainFormatter, RedactingJsonFormatter

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TOKEN = "whk_3q2V9kVZfJ0yQm2Yk4xvQd1yQ3b5z8Qp"


def record(message: str, **extra) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "deliveries.engine", "levelno": 20, "levelname": "INFO", "msg": message, **extra}
    )


def json_formatter() -> RedactingJsonFormatter:
    config = settings.LOGGING["formatters"]["json"]
    return RedactingJsonFormatter(config["fmt"], rename_fields=config["rename_fields"])


def test_json_lines_carry_the_extras_and_never_a_secret():
    line = json_formatter().format(
        record(
            f"sent with {SECRET} and Authorization: Bearer abc.def-ghi and token {TOKEN}",
            event_id="evt_1",
            delivery_id="dlv_1",
            endpoint_id="ep_1",
            attempt=3,
            outcome="timeout",
            duration_ms=15003,
        )
    )
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "INFO" and data["logger"] == "deliveries.engine" and "time" in data
    assert (data["event_id"], data["delivery_id"], data["endpoint_id"]) == (
        "evt_1",
        "dlv_1",
        "ep_1",
    )
    assert (data["attempt"], data["outcome"], data["duration_ms"]) == (3, "timeout", 15003)
    for secret in (SECRET, TOKEN, "abc.def-ghi"):
        assert secret not in line
    assert "whsec_***" in data["message"] and "Bearer ***" in data["message"]


def test_plain_lines_are_readable_with_the_extras():
    formatter = PlainFormatter("%(levelname)s %(name)s %(message)s")
    line = formatter.format(record("delivery attempt failed", delivery_id="dlv_1", attempt=2))
    assert line == "INFO deliveries.engine delivery attempt failed delivery_id=dlv_1 attempt=2"
    assert TOKEN not in formatter.format(record(f"token {TOKEN}"))


def test_logging_goes_to_stdout_and_keeps_django_q_quiet():
    handler = settings.LOGGING["handlers"]["console"]
    assert handler["stream"] == "ext://sys.stdout"
    assert settings.LOGGING["loggers"]["django-q"]["level"] == "WARNING"


@pytest.mark.django_db(transaction=True)
def test_every_attempt_is_logged_with_ids_outcome_and_duration(event_types, receiver, caplog):
    endpoint = make_endpoint(url=receiver.url_for(), auth_token="s3cr3t-bearer-value")
    event = publish("order.paid", {"n": 1})
    with caplog.at_level(logging.INFO, logger="deliveries.engine"):
        run_queue()
    (logged,) = [r for r in caplog.records if r.getMessage().startswith("delivery attempt")]
    delivery = event.deliveries.get()
    assert (logged.event_id, logged.delivery_id, logged.endpoint_id) == (
        event.public_id,
        delivery.public_id,
        endpoint.public_id,
    )
    assert (logged.attempt, logged.outcome, logged.status_code) == (1, "succeeded", 200)
    assert isinstance(logged.duration_ms, int)
    line = json_formatter().format(logged)
    assert endpoint.signing_secret not in line and "s3cr3t-bearer-value" not in line
