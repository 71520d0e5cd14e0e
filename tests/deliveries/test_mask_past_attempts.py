"""Attempts recorded before custom headers were secrets get their values masked (F3)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("deliveries", "0005_shared_cache_table"), ("endpoints", "0003_encrypt_endpoint_headers")]
AFTER = [("deliveries", "0006_mask_custom_headers_in_past_attempts")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_past_attempts_lose_their_clear_custom_header_values():
    old = migrate(BEFORE)
    try:
        Partner = old.get_model("endpoints", "Partner")
        Endpoint = old.get_model("endpoints", "Endpoint")
        EventType = old.get_model("events", "EventType")
        Event = old.get_model("events", "Event")
        Delivery = old.get_model("deliveries", "Delivery")
        Attempt = old.get_model("deliveries", "DeliveryAttempt")
        partner = Partner.objects.create(name="P", public_id="prt_x")
        endpoint = Endpoint.objects.create(
            partner=partner, name="e", url="http://127.0.0.1/h", public_id="ep_x",
            signing_secret="whsec_dGVzdA==",
        )  # fmt: skip
        event = Event.objects.create(
            event_type=EventType.objects.get_or_create(name="order.paid")[0],
            public_id="evt_x", body="{}", payload={}, occurred_at="2026-01-01T00:00:00Z",
        )  # fmt: skip
        delivery = Delivery.objects.create(event=event, endpoint=endpoint, public_id="dlv_x")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "webhookhub/1",
            "webhook-id": "evt_x",
            "webhook-timestamp": "1700000000",
            "webhook-signature": "••••abcd",
            "X-Password": "hunter2-long-secret-value",
            "X-Tenant": "t1",
        }
        Attempt.objects.create(
            delivery=delivery, number=1, trigger="auto", started_at="2026-01-01T00:00:00Z",
            request_url=endpoint.url, request_headers=headers,
        )  # fmt: skip
        new = migrate(AFTER)
        (stored,) = new.get_model("deliveries", "DeliveryAttempt").objects.values_list(
            "request_headers", flat=True
        )
        assert stored["X-Password"] == "••••alue" and stored["X-Tenant"] == "••••"
        assert stored["webhook-signature"] == "••••abcd", "already masked: unchanged"
        assert {k: stored[k] for k in ("Content-Type", "webhook-id", "webhook-timestamp")} == {
            "Content-Type": "application/json",
            "webhook-id": "evt_x",
            "webhook-timestamp": "1700000000",
        }
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
