"""Shared fixtures: a real HTTP receiver, the event type catalog, in-memory spans."""

import pytest

from tests.receiver import receiver  # noqa: F401  (fixture)
from tests.tracing import spans  # noqa: F401  (fixture)

SYSTEM_EVENT_TYPES = (
    "webhookhub.test",
    "webhookhub.endpoint.disabled",
    "webhookhub.endpoint.recovered",
    "webhookhub.delivery.dead",
    "webhookhub.endpoint.failing",
    "webhookhub.endpoint.verification",
)


@pytest.fixture
def event_types(db):
    """order.paid, order.refunded, shipment.moved, plus webhookhub's own types.

    A migration creates the system types, but transactional tests flush every table,
    so they are put back here.
    """
    from events.models import EventType

    for name in SYSTEM_EVENT_TYPES:
        EventType.objects.get_or_create(name=name)
    return {
        name: EventType.objects.get_or_create(name=name, defaults={"description": name})[0]
        for name in ("order.paid", "order.refunded", "shipment.moved")
    }


@pytest.fixture(autouse=True)
def _fresh_content_type_cache():
    """Transactional tests flush and recreate content types; Django caches their ids."""
    from django.contrib.contenttypes.models import ContentType
    from django.core.cache import caches

    ContentType.objects.clear_cache()
    caches["shared"].clear()
    yield
    ContentType.objects.clear_cache()
