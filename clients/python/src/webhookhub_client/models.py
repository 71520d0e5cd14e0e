"""What the client returns: published events and catalog entries, with the raw JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """An event as webhookhub recorded it.

    `created` is True when this call published it, False when the server answered with
    an earlier event under the same idempotency key (nothing new was sent), and None when
    the server did not say (a batch where only some were repeats, for keys you gave).
    `raw` is the API's JSON for the event (`data`, `partner`, `occurred_at`, `tags` …).
    """

    id: str
    type: str
    deliveries_count: int
    created: bool | None
    idempotency_key: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def data(self) -> Any:
        return self.raw.get("data")

    @classmethod
    def from_api(cls, raw: dict[str, Any], *, created: bool | None) -> Event:
        return cls(
            id=raw["id"],
            type=raw["type"],
            deliveries_count=raw.get("deliveries_count", 0),
            created=created,
            idempotency_key=raw.get("idempotency_key"),
            raw=raw,
        )


@dataclass(frozen=True)
class EventType:
    """A name in the event type catalog; `raw` holds `example`, `schema`, times."""

    name: str
    description: str
    archived: bool
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> EventType:
        return cls(
            name=raw["name"],
            description=raw.get("description", ""),
            archived=bool(raw.get("archived", False)),
            raw=raw,
        )
