"""Public ids: a type prefix and a ULID, so they sort by creation time (`evt_01J…`).

Integer primary keys stay internal; these are what URLs, the API and receivers see.
"""

from ulid import ULID


def make_id(prefix: str) -> str:
    return f"{prefix}_{ULID()}"


def partner_id() -> str:
    return make_id("prt")


def endpoint_id() -> str:
    return make_id("ep")


def event_id() -> str:
    return make_id("evt")


def delivery_id() -> str:
    return make_id("dlv")
