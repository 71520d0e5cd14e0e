"""Create a REST API token and print it once."""

from django.core.management.base import CommandError
from django.db import transaction

from endpoints.models import ApiToken, Partner
from endpoints.services import api_token_create
from webhookhub.commands import OpsCommand


class Command(OpsCommand):
    help = (
        "Create an API token and print it once, alone on the last line (only its hash is "
        "stored). A partner token needs --partner; a publisher token may publish events."
    )

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, choices=ApiToken.Role.values)
        parser.add_argument("--partner", metavar="NAME_OR_ID", help="Partner name or id (prt_…).")
        parser.add_argument("--name", default="", metavar="LABEL", help="A label to recognise it.")

    def handle(self, *args, role, partner, name, dry_run=False, **options):
        owner = None
        if partner:
            owner = (
                Partner.objects.filter(public_id=partner).first()
                or Partner.objects.filter(name=partner).first()
            )
            if owner is None:
                raise CommandError(f"no partner named or with id {partner!r}")
        elif role == ApiToken.Role.PARTNER:
            raise CommandError("a partner token needs --partner NAME_OR_ID")
        with transaction.atomic():
            token, raw = api_token_create(role=role, partner=owner, name=name, by=self.by())
            if dry_run:
                transaction.set_rollback(True)
                self.stdout.write(f"Would create a {role} token{self._for(owner)}.")
                return
        label = f" {name!r}" if name else ""
        self.stdout.write(
            f"Created {role} token{label} ({token.prefix}…){self._for(owner)}. "
            "It is shown once; store it now:"
        )
        self.stdout.write(raw)

    @staticmethod
    def _for(owner):
        return f" for {owner.name} ({owner.public_id})" if owner else ""
