"""Delete events past retention with their deliveries and attempts."""

from datetime import timedelta

from django.core.management.base import CommandError
from django.utils import timezone

from deliveries.maintenance import events_prune
from webhookhub.commands import OpsCommand


class Command(OpsCommand):
    help = (
        "Delete events created more than DAYS days ago, with their deliveries and attempts, "
        "in batches. An event with a delivery still pending, retrying or in flight is kept "
        "whole until it finishes."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than", type=int, required=True, metavar="DAYS", help="Retention in days (≥ 1)."
        )
        parser.add_argument("--batch-size", type=int, default=500, help="Events per transaction.")

    def handle(self, *args, older_than, batch_size, dry_run=False, **options):
        if older_than < 1:
            raise CommandError("--older-than must be at least 1 day")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        cutoff = timezone.now() - timedelta(days=older_than)
        progress = self.progress("events examined")
        try:
            result = events_prune(
                older_than=timedelta(days=older_than),
                dry_run=dry_run,
                batch_size=batch_size,
                progress=progress,
            )
        finally:
            progress.close()
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(
            f"{verb} {result.events} events, {result.deliveries} deliveries and "
            f"{result.attempts} attempts created before {cutoff:%Y-%m-%d %H:%M} UTC"
            f"; kept {result.kept} events with deliveries still "
            "unfinished."
        )
