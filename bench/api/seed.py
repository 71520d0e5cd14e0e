"""Bench data: a publisher token and one partner per fan-out size, whose endpoints
(subscribed to `*`) each event will go to. Prints JSON. Run by bench/api/run.py with
the bench environment (`python -m bench.api.seed 1 10`)."""

import json
import sys

import django


def main(sizes: list[int]) -> None:
    django.setup()
    from endpoints.models import ApiToken
    from endpoints.services import api_token_create, endpoint_create, partner_create
    from events.models import EventType

    EventType.objects.get_or_create(name="bench.event", defaults={"description": "bench"})
    _, token = api_token_create(role=ApiToken.Role.PUBLISHER, name="bench", by="bench")
    partners = {}
    for size in sizes:
        partner = partner_create(name=f"bench-fanout-{size}")
        for n in range(size):
            # Nothing listens there and no worker runs: only the publish side is measured.
            endpoint_create(
                partner,
                name=f"e{n}",
                url=f"http://127.0.0.1:9/hook/{n}",
                event_types=["*"],
                by="bench",
            )
        partners[size] = partner.public_id
    json.dump({"token": token, "partners": partners}, sys.stdout)


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]])
