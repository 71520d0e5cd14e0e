"""`deliveries.signals`, the import path SPEC.md names for the extension signals.

They are defined in `webhookhub.signals` (events sends `event_published` too, and events
must not import the deliveries app's internals); this module is the same objects under
the documented name, so `from deliveries.signals import delivery_dead` and
`from webhookhub.signals import delivery_dead` connect to one signal.
"""

from webhookhub.signals import (
    CircuitChanged,
    DeliveryOutcome,
    EndpointFailing,
    EndpointInfo,
    EndpointSwitched,
    EventPublished,
    FailureDigest,
    circuit_closed,
    circuit_opened,
    delivery_dead,
    delivery_failed,
    delivery_succeeded,
    endpoint_disabled,
    endpoint_enabled,
    endpoint_failing,
    event_published,
    failure_digest,
)

__all__ = [
    "CircuitChanged",
    "DeliveryOutcome",
    "EndpointFailing",
    "EndpointInfo",
    "EndpointSwitched",
    "EventPublished",
    "FailureDigest",
    "circuit_closed",
    "circuit_opened",
    "delivery_dead",
    "delivery_failed",
    "delivery_succeeded",
    "endpoint_disabled",
    "endpoint_enabled",
    "endpoint_failing",
    "event_published",
    "failure_digest",
]
