"""Shared fixtures: a real HTTP receiver, model factories' entry points, helpers."""

import pytest

from tests.receiver import receiver  # noqa: F401  (fixture)


@pytest.fixture
def event_types(db):
    """A small catalog: order.paid, order.refunded, shipment.moved."""
    from events.models import EventType

    return {
        name: EventType.objects.get_or_create(name=name, defaults={"description": name})[0]
        for name in ("order.paid", "order.refunded", "shipment.moved")
    }
