"""Send a signed webhookhub.test event to one endpoint now and show the result."""

from django.core.management.base import CommandError

from deliveries.services import endpoint_send_test
from endpoints.models import Endpoint
from webhookhub.commands import OpsCommand


class Command(OpsCommand):
    help = (
        "Send a signed webhookhub.test event to ENDPOINT (its id, ep_…) now, wait for the "
        "answer and print it. Exits non-zero if the endpoint did not answer 2xx. A test is "
        "sent even to a disabled endpoint and is never retried."
    )

    def add_arguments(self, parser):
        parser.add_argument("endpoint", metavar="ENDPOINT", help="The endpoint's id (ep_…).")

    def handle(self, *args, endpoint, dry_run=False, **options):
        target = Endpoint.objects.filter(public_id=endpoint).first()
        if target is None:
            raise CommandError(f"no endpoint with id {endpoint!r}")
        if dry_run:
            self.stdout.write(
                f"Would send a webhookhub.test event to {target.public_id} {target.url}"
            )
            return
        attempt = endpoint_send_test(target, by=self.by())
        if attempt is None:
            raise CommandError(f"the test event to {target.public_id} could not be sent")
        event_id = attempt.delivery.event.public_id
        if attempt.succeeded:
            self.stdout.write(
                f"Test event {event_id} to {target.public_id} {target.url}: "
                f"HTTP {attempt.response_status_code} in {attempt.duration_ms} ms"
            )
            return
        if attempt.response_status_code is not None:
            reason = f"HTTP {attempt.response_status_code}"
        else:
            reason = attempt.error_kind or "error"
        if attempt.error_message:
            reason += f" ({attempt.error_message.splitlines()[0][:200]})"
        raise CommandError(
            f"test event {event_id} to {target.public_id} {target.url} failed: {reason} "
            f"after {attempt.duration_ms} ms"
        )
