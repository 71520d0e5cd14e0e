"""A demo partner, event types, two endpoints and a few events for a first look."""

from django.core.management.base import BaseCommand
from django.db import transaction

from endpoints.models import Endpoint, Partner
from endpoints.services import endpoint_create, partner_create
from events.models import EventType
from events.services import publish

EVENT_TYPES = {
    "order.paid": (
        "An order was paid.",
        {"order": {"id": "ord_1001", "amount": 4999, "currency": "EUR"}},
    ),
    "order.refunded": ("An order was refunded.", {"order": {"id": "ord_1001", "amount": 4999}}),
    "shipment.moved": (
        "A shipment changed status.",
        {"shipment": {"id": "shp_77", "status": "in_transit"}},
    ),
    "subscription.changed": (
        "A subscription changed plan.",
        {"subscription": {"id": "sub_9", "plan": "pro"}},
    ),
}


class Command(BaseCommand):
    help = "Create demo data (idempotent: running it again creates nothing new)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Where the demo receiver runs (default %(default)s).",
        )

    @transaction.atomic
    def handle(self, *args, base_url, **options):
        for name, (description, example) in EVENT_TYPES.items():
            EventType.objects.get_or_create(
                name=name, defaults={"description": description, "example": example}
            )
        partner = Partner.objects.filter(name="Demo Shop Partner").first() or partner_create(
            name="Demo Shop Partner", contact_email="ops@demo-partner.example"
        )
        endpoints = {
            "Orders (healthy)": (f"{base_url}/demo/hooks/ok", ["order.*"]),
            "Everything (flaky)": (f"{base_url}/demo/hooks/flaky", ["*"]),
        }
        for name, (url, event_types) in endpoints.items():
            if not Endpoint.objects.filter(partner=partner, name=name).exists():
                endpoint_create(
                    partner, name=name, url=url, event_types=event_types, by="seed_demo"
                )
        created = 0
        for n in range(1, 6):
            for event_type in ("order.paid", "shipment.moved"):
                event = publish(
                    event_type,
                    EVENT_TYPES[event_type][1] | {"demo_sequence": n},
                    partner=partner,
                    source="seed_demo",
                    idempotency_key=f"demo-{event_type}-{n}",
                )
                created += event.created
        self.stdout.write(f"Demo partner {partner.public_id}: {created} new events.")
