"""Create a partner (the company that receives webhooks) and print its id."""

from django.db import transaction

from endpoints.services import partner_create
from webhookhub.commands import OpsCommand


class Command(OpsCommand):
    help = "Create a partner and print its id (prt_…) alone on one line."

    def add_arguments(self, parser):
        parser.add_argument("name", metavar="NAME", help="The partner's name (unique).")
        parser.add_argument(
            "--email", default="", metavar="ADDR", help="Contact for failure notices."
        )

    def handle(self, *args, name, email, dry_run=False, **options):
        with transaction.atomic():
            partner = partner_create(name=name, contact_email=email)
            if dry_run:
                transaction.set_rollback(True)
                self.stdout.write(f"Would create partner {name!r} (the name and e-mail are valid).")
                return
        self.stdout.write(partner.public_id)
