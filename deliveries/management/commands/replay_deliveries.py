"""Send failed (or any finished) deliveries again, with filters; safe to run from cron."""

from django.core.management.base import CommandError
from django.db.models import Count

from deliveries.maintenance import deliveries_replay
from deliveries.models import DeliveryStatus
from deliveries.selectors import REPLAYABLE_STATUSES, deliveries_for_replay
from endpoints.models import Endpoint, Partner
from events.models import EventType
from webhookhub.commands import OpsCommand, parse_when

CHOICES = [str(s) for s in REPLAYABLE_STATUSES]


class Command(OpsCommand):
    help = (
        "Replay deliveries: each becomes a new attempt on the same delivery (same "
        "webhook-id, trigger 'replay'). Default: dead deliveries to enabled endpoints. "
        "Pending and in-flight deliveries are never sent again, and two runs at the same "
        "time never queue one delivery twice, so it is safe from cron."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--status",
            action="append",
            metavar="STATUS",
            help=f"Status to replay: {', '.join(CHOICES)}; repeat or comma-separate "
            "(default: dead).",
        )
        parser.add_argument(
            "--endpoint", action="append", metavar="ENDPOINT_ID", help="An endpoint id; repeatable."
        )
        parser.add_argument("--partner", metavar="NAME_OR_ID", help="A partner name or id (prt_…).")
        parser.add_argument(
            "--event-type", metavar="TYPE", help="An event type name or wildcard (order.*)."
        )
        parser.add_argument(
            "--since",
            metavar="TIME",
            help="Deliveries created at or after: ISO 8601 or an age (24h, 7d).",
        )
        parser.add_argument(
            "--until", metavar="TIME", help="Deliveries created before: same forms."
        )
        parser.add_argument("--limit", type=int, metavar="N", help="Replay at most N deliveries.")
        parser.add_argument(
            "--include-disabled",
            action="store_true",
            help="Also deliveries to disabled endpoints (they wait until it is switched on).",
        )
        parser.add_argument(
            "--batch-size", type=int, default=200, help="Deliveries per transaction."
        )

    def handle(self, *args, **options):
        statuses = self._statuses(options["status"])
        since = parse_when(options["since"]) if options["since"] else None
        until = parse_when(options["until"]) if options["until"] else None
        if since and until and since >= until:
            raise CommandError("--since must be before --until")
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        rows = deliveries_for_replay(
            statuses=statuses,
            endpoints=self._endpoints(options["endpoint"]),
            partner=self._partner(options["partner"]),
            event_type=self._event_type(options["event_type"]),
            since=since,
            until=until,
            include_disabled=options["include_disabled"],
        )
        limit = options["limit"]
        if options["dry_run"]:
            self._dry_run(rows, limit)
            return
        progress = self.progress("replayed", total=limit)
        try:
            queued = deliveries_replay(
                rows, by=self.by(), limit=limit, batch_size=options["batch_size"], progress=progress
            )
        finally:
            progress.close()
        self.stdout.write(f"Replayed {queued} deliveries ({', '.join(statuses)}).")

    def _dry_run(self, rows, limit):
        by_status = dict(
            rows.order_by().values("status").annotate(n=Count("pk")).values_list("status", "n")
        )
        total = sum(by_status.values())
        would = total if limit is None else min(total, limit)
        detail = ", ".join(f"{status} {n}" for status, n in sorted(by_status.items())) or "none"
        self.stdout.write(f"Would replay {would} deliveries (matching: {detail}).")
        if self.verbosity >= 2:
            for public_id, endpoint, event in rows.order_by("pk").values_list(
                "public_id", "endpoint__public_id", "event__public_id"
            )[: min(would, 50)]:
                self.stdout.write(f"  {public_id}  {event} -> {endpoint}")

    def _statuses(self, values) -> list[str]:
        wanted = []
        for value in values or [DeliveryStatus.DEAD]:
            for status in str(value).split(","):
                status = status.strip()
                if status not in CHOICES:
                    raise CommandError(
                        f"--status {status!r}: choose from {', '.join(CHOICES)} (pending and "
                        "in-flight deliveries are already on their way)"
                    )
                if status not in wanted:
                    wanted.append(status)
        return wanted

    def _endpoints(self, values):
        if not values:
            return None
        found = {e.public_id: e for e in Endpoint.objects.filter(public_id__in=values)}
        missing = [v for v in values if v not in found]
        if missing:
            raise CommandError(f"no endpoint with id {', '.join(missing)}")
        return list(found.values())

    def _partner(self, value):
        if not value:
            return None
        partner = (
            Partner.objects.filter(public_id=value).first()
            or Partner.objects.filter(name=value).first()
        )
        if partner is None:
            raise CommandError(f"no partner named or with id {value!r}")
        return partner

    def _event_type(self, value):
        if not value or value == "*" or value.endswith(".*"):
            return value
        if not EventType.objects.filter(name=value).exists():
            raise CommandError(f"unknown event type {value!r}")
        return value
