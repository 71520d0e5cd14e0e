"""Delete events past retention with their deliveries and attempts."""

from datetime import timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from deliveries.retention import Retention, events_prune
from webhookhub.commands import OpsCommand


class Command(OpsCommand):
    help = (
        "Delete finished events past retention, with their deliveries and attempts, in "
        "batches. Retention: --older-than DAYS for every event, or else "
        "WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED (every delivery succeeded, or none) and "
        "WEBHOOKHUB_RETENTION_DAYS_FAILED (a delivery dead or cancelled). An event with a "
        "delivery still pending, retrying or in flight is kept whole until it finishes."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            type=int,
            metavar="DAYS",
            help="One retention in days (≥ 1) for every event, instead of the settings.",
        )
        parser.add_argument("--batch-size", type=int, default=500, help="Events per transaction.")

    def handle(self, *args, older_than, batch_size, dry_run=False, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        if older_than is not None:
            if older_than < 1:
                raise CommandError("--older-than must be at least 1 day")
            retention = Retention.uniform(timedelta(days=older_than))
        else:
            try:
                retention = Retention.from_settings()
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            if not retention.configured:
                raise CommandError(
                    "no retention: give --older-than DAYS or set "
                    "WEBHOOKHUB_RETENTION_DAYS_SUCCEEDED and/or WEBHOOKHUB_RETENTION_DAYS_FAILED"
                )
        now = timezone.now()
        progress = self.progress("events examined")
        try:
            result = events_prune(
                retention=retention,
                dry_run=dry_run,
                batch_size=batch_size,
                now=now,
                progress=progress,
            )
        finally:
            progress.close()
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {result.events} events, {result.deliveries} deliveries and "
            f"{result.attempts} attempts ({self._describe(retention, now)}); kept "
            f"{result.kept} events with deliveries still unfinished"
            + (
                f" and {result.failed_kept} failed events not yet past their retention."
                if result.failed_kept
                else "."
            )
        )

    @staticmethod
    def _describe(retention: Retention, now) -> str:
        if retention.succeeded == retention.failed:
            return f"created before {now - retention.succeeded:%Y-%m-%d %H:%M} UTC"
        parts = []
        for label, age in (("succeeded", retention.succeeded), ("failed", retention.failed)):
            if age is None:
                parts.append(f"{label}: kept forever")
            else:
                parts.append(f"{label}: created before {now - age:%Y-%m-%d %H:%M} UTC")
        return "; ".join(parts)
