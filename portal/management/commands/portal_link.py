"""Print a single-use sign-in link to a partner's portal."""

from django.core.management.base import CommandError

from endpoints.models import Partner
from portal.services import portal_link_create
from webhookhub.commands import OpsCommand


class Command(OpsCommand):
    help = (
        "Create a single-use sign-in link to PARTNER's webhook portal and print it alone on "
        "the last line (only its hash is stored). The scheme and host come from "
        "WEBHOOKHUB_PORTAL_BASE_URL."
    )
    changes_data = False

    def add_arguments(self, parser):
        parser.add_argument("partner", metavar="PARTNER", help="Partner name or id (prt_…).")
        parser.add_argument(
            "--minutes",
            type=int,
            default=None,
            help="How long the link stays valid (default WEBHOOKHUB_PORTAL_LINK_MINUTES).",
        )
        parser.add_argument("--label", default="", help="Who it is for (recorded as who acted).")

    def handle(self, *args, partner, minutes, label, **options):
        owner = (
            Partner.objects.filter(public_id=partner).first()
            or Partner.objects.filter(name=partner).first()
        )
        if owner is None:
            raise CommandError(f"no partner named or with id {partner!r}")
        link, url = portal_link_create(
            owner, minutes=minutes, by="command:portal_link", label=label
        )
        self.stdout.write(
            f"Sign-in link to the portal of {owner.name} ({owner.public_id}), single use, "
            f"valid until {link.expires_at:%Y-%m-%d %H:%M %Z}:"
        )
        self.stdout.write(url)
