"""Hand deliveries that nobody is working on back to the workers."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from deliveries.maintenance import deliveries_recover_stuck, stuck_counts
from deliveries.selectors import dispatcher_heartbeat
from webhookhub.commands import OpsCommand

REASONS = {
    "expired_leases": "in flight with an expired lease (worker died)",
    "due_retries": "retries due but not queued",
    "lost_first_attempts": "first attempts whose task was lost (broker)",
}


class Command(OpsCommand):
    help = (
        "Re-queue deliveries that are due but were never handed to a worker (the broker "
        "lost them) and in-flight deliveries whose worker's lease expired (it died). The "
        "dispatcher loop does this every half second while a cluster runs; this command "
        "does it once, now — after restoring a database or flushing a broker, or from "
        "cron as a safety net."
    )

    def handle(self, *args, dry_run=False, **options):
        counts = stuck_counts()
        detail = ", ".join(f"{REASONS[k]}: {n}" for k, n in counts.items())
        if dry_run:
            self.stdout.write(f"Would hand {sum(counts.values())} deliveries over ({detail}).")
            return
        progress = self.progress("handed over", total=sum(counts.values()))
        try:
            handed = deliveries_recover_stuck(progress=progress)
        finally:
            progress.close()
        self.stdout.write(f"Handed {handed} deliveries to the workers ({detail}).")
        self._warn_if_no_cluster()

    def _warn_if_no_cluster(self):
        beat = dispatcher_heartbeat()
        limit = timedelta(seconds=settings.WEBHOOKHUB_READY_HEARTBEAT_SECONDS)
        if beat is None or timezone.now() - beat > limit:
            seen = "never" if beat is None else beat.strftime("%Y-%m-%d %H:%M:%S UTC")
            self.stderr.write(
                f"Warning: no qcluster seems to be running (last dispatcher heartbeat: {seen}); "
                "the deliveries are queued and go out when one starts."
            )
