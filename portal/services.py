"""Portal sign-in: creating single-use links and redeeming them.

What the command, the API and the admin's partner page call. A link is a random token
whose hash is stored; redeeming it marks it used in one conditional UPDATE, so two
clicks racing each other sign in once.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.models import Action
from audit.services import audit_record
from endpoints.models import Partner
from portal.models import PortalLink

MAX_LINK_MINUTES = 7 * 24 * 60
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


class LinkRefused(Exception):
    """A sign-in link that does not sign in; `reason` says why in one word."""

    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    PARTNER_INACTIVE = "partner_inactive"

    def __init__(self, reason: str, link: PortalLink | None = None):
        super().__init__(reason)
        self.reason = reason
        self.link = link


def portal_link_url(raw: str, *, base_url: str = "") -> str:
    """The absolute sign-in URL of a raw token."""
    base = settings.WEBHOOKHUB_PORTAL_BASE_URL or base_url or DEFAULT_BASE_URL
    return base.rstrip("/") + reverse("portal:sign_in", args=[raw])


def portal_link_create(
    partner: Partner,
    *,
    minutes: int | None = None,
    by: str,
    label: str = "",
    base_url: str = "",
) -> tuple[PortalLink, str]:
    """A new single-use sign-in link for `partner`, valid `minutes` (default
    WEBHOOKHUB_PORTAL_LINK_MINUTES). Returns the link and its URL; only the hash of the
    token is stored, so the URL is shown (or mailed) now or never."""
    if minutes is None:
        minutes = settings.WEBHOOKHUB_PORTAL_LINK_MINUTES
    if not 1 <= minutes <= MAX_LINK_MINUTES:
        raise ValidationError(
            {"minutes": _("Between 1 and %(max)s minutes.") % {"max": MAX_LINK_MINUTES}}
        )
    if not partner.is_active:
        raise ValidationError({"partner": _("The partner is inactive.")})
    raw, token_hash = PortalLink.generate()
    with transaction.atomic():
        link = PortalLink.objects.create(
            partner=partner,
            token_hash=token_hash,
            label=label[:150],
            created_by=by[:150],
            expires_at=timezone.now() + timedelta(minutes=minutes),
        )
        audit_record(
            Action.PORTAL_LINK_CREATED,
            partner,
            by=by,
            details={"label": link.label, "minutes": minutes},
        )
    return link, portal_link_url(raw, base_url=base_url)


def portal_link_check(raw: str) -> PortalLink:
    """The link `raw` stands for if it can still sign in (nothing is changed); raises
    LinkRefused otherwise."""
    link = (
        PortalLink.objects.select_related("partner")
        .filter(token_hash=PortalLink.hash(raw or ""))
        .first()
    )
    if link is None:
        raise LinkRefused(LinkRefused.UNKNOWN)
    if link.used_at is not None:
        raise LinkRefused(LinkRefused.USED, link)
    if link.expires_at <= timezone.now():
        raise LinkRefused(LinkRefused.EXPIRED, link)
    if not link.partner.is_active:
        raise LinkRefused(LinkRefused.PARTNER_INACTIVE, link)
    return link


def portal_link_redeem(raw: str) -> PortalLink:
    """Use the link `raw` stands for: it is marked used (once, whatever races it) and
    returned. Raises LinkRefused (used / expired / partner inactive / unknown)."""
    link = portal_link_check(raw)
    now = timezone.now()
    used = PortalLink.objects.filter(pk=link.pk, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now
    )
    if not used:
        raise LinkRefused(LinkRefused.USED, link)
    link.used_at = now
    return link
