"""Erase events' payloads (a tombstone instead), keeping their history."""

from django.core.management.base import CommandError

from deliveries.erasure import events_expunge
from endpoints.models import Partner
from events.models import Event
from webhookhub.commands import OpsCommand, parse_when


class Command(OpsCommand):
    help = (
        "Replace the payload, the stored body and the attempts' response bodies and "
        "headers of the matching events with a tombstone; ids, types, statuses, timings and "
        "the audit trail stay. Deliveries still waiting are cancelled and the events can no "
        "longer be replayed. Give at least one filter. Exits non-zero if an event had a "
        "delivery in flight (run it again a few seconds later: it finishes the job)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--partner",
            metavar="NAME_OR_ID",
            help="Events published for this partner (name or prt_…; broadcasts are not).",
        )
        parser.add_argument(
            "--event", action="append", default=[], metavar="EVT_ID", help="An event (repeat)."
        )
        parser.add_argument(
            "--before",
            metavar="TIME",
            help="Events created before TIME (ISO 8601, or an age: 90m, 24h, 7d).",
        )
        parser.add_argument("--reason", default="", help="Recorded in the audit trail.")
        parser.add_argument("--batch-size", type=int, default=100, help="Events per transaction.")

    def handle(self, *args, partner, event, before, reason, batch_size, dry_run=False, **opts):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if not (partner or event or before):
            raise CommandError("give --partner, --event or --before: nothing is erased without")
        events = Event.objects.all()
        if partner:
            found = (
                Partner.objects.filter(public_id=partner).first()
                or Partner.objects.filter(name=partner).first()
            )
            if found is None:
                raise CommandError(f"no partner named or with id {partner!r}")
            events = events.filter(partner=found)
        if event:
            known = set(
                Event.objects.filter(public_id__in=event).values_list("public_id", flat=True)
            )
            missing = [value for value in event if value not in known]
            if missing:
                raise CommandError(f"no event with id {', '.join(missing)}")
            events = events.filter(public_id__in=event)
        if before:
            events = events.filter(created_at__lt=parse_when(before))
        progress = self.progress("events examined")
        try:
            result = events_expunge(
                events,
                by=self.by(),
                reason=reason,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=progress,
            )
        finally:
            progress.close()
        verb = "Would erase" if dry_run else "Erased"
        cancel = "would cancel" if dry_run else "cancelled"
        self.stdout.write(
            f"{verb} the payloads of {result.events} events ({result.already} already "
            f"erased); {cancel} {result.deliveries_cancelled} waiting deliveries; "
            f"{result.attempts} attempts emptied."
        )
        if result.busy:
            shown = ", ".join(result.busy[:20]) + (" …" if len(result.busy) > 20 else "")
            raise CommandError(
                f"{len(result.busy)} events not erased: a delivery was in flight ({shown}); "
                "run the command again in a few seconds"
            )
