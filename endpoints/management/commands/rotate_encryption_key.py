"""Re-encrypt every stored secret with the newest WEBHOOKHUB_ENCRYPTION_KEY."""

from django.core.management.base import BaseCommand
from django.db import transaction

from endpoints.models import Endpoint

# Every encrypted field of an endpoint (custom headers included: their values are secrets).
SECRET_FIELDS = [
    "signing_secret",
    "previous_secrets",
    "signing_key",
    "previous_keys",
    "auth_token",
    "headers",
]


class Command(BaseCommand):
    help = (
        "Re-encrypt endpoint signing secrets and bearer tokens with the first key in "
        "WEBHOOKHUB_ENCRYPTION_KEY. Run after prepending a new key; then the old key can "
        "be removed from the list."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args, dry_run=False, **options):
        done = 0
        for pk in Endpoint.objects.values_list("pk", flat=True).iterator(chunk_size=500):
            with transaction.atomic():
                endpoint = Endpoint.objects.select_for_update().get(pk=pk)
                if not dry_run:
                    # Saving writes each secret again, encrypted with the newest key.
                    endpoint.save(update_fields=SECRET_FIELDS)
            done += 1
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        self.stdout.write(f"{verb} the secrets of {done} endpoints")
