"""The portal session: one partner per browser session, with an idle and an absolute
limit (WEBHOOKHUB_PORTAL_IDLE_MINUTES, WEBHOOKHUB_PORTAL_MAX_HOURS).

Kept in Django's session under one key; the session key is cycled at sign-in (no
fixation) and the whole entry is dropped at sign-out or when a limit is passed.
"""

import functools
import time

from django.conf import settings
from django.template.response import TemplateResponse

from endpoints.models import Partner
from portal.models import PortalLink

SESSION_KEY = "webhookhub_portal"
SEEN_WRITE_EVERY = 60  # seconds: the idle clock is written at most once a minute


def sign_in(request, link: PortalLink) -> None:
    """Start a portal session for the link's partner (ending any other)."""
    request.session.cycle_key()
    now = int(time.time())
    request.session[SESSION_KEY] = {
        "partner": link.partner_id,
        "label": link.label or link.partner.public_id,
        "link": link.pk,
        "started": now,
        "seen": now,
    }
    # The cookie lives as long as the absolute limit; the idle limit is checked here, so
    # an idle session is told it expired instead of looking like no session at all.
    request.session.set_expiry(settings.WEBHOOKHUB_PORTAL_MAX_HOURS * 3600)


def sign_out(request) -> None:
    request.session.pop(SESSION_KEY, None)


def session_partner(request) -> tuple[Partner | None, str]:
    """(the signed-in partner, "") or (None, why: "none" / "expired" / "inactive")."""
    state = request.session.get(SESSION_KEY)
    if not isinstance(state, dict):
        return None, "none"
    now = int(time.time())
    idle = settings.WEBHOOKHUB_PORTAL_IDLE_MINUTES * 60
    absolute = settings.WEBHOOKHUB_PORTAL_MAX_HOURS * 3600
    if now - state.get("seen", 0) > idle or now - state.get("started", 0) > absolute:
        sign_out(request)
        return None, "expired"
    partner = Partner.objects.filter(pk=state.get("partner"), is_active=True).first()
    if partner is None:
        sign_out(request)
        return None, "inactive"
    if now - state["seen"] >= SEEN_WRITE_EVERY:
        request.session[SESSION_KEY] = {**state, "seen": now}
    return partner, ""


def portal_actor(request) -> str:
    """The audit label of whoever acts in this portal session."""
    state = request.session.get(SESSION_KEY) or {}
    return f"portal:{state.get('label') or '?'}"[:150]


def partner_required(view):
    """Views of a signed-in partner: `request.partner` and `request.portal_by` are set;
    anyone else gets a page saying how to sign in (403)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        partner, why = session_partner(request)
        if partner is None:
            return TemplateResponse(request, "portal/signed_out.html", {"why": why}, status=403)
        request.partner = partner
        request.portal_by = portal_actor(request)
        return view(request, *args, **kwargs)

    return wrapper
