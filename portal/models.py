"""Sign-in links of the partner portal: single use, short-lived, stored hashed."""

import hashlib
import secrets

from django.db import models
from django.utils.translation import gettext_lazy as _

from endpoints.models import Partner

TOKEN_PREFIX = "wpl_"


class PortalLink(models.Model):
    """One sign-in link to the portal for one partner. Only the token's hash is kept:
    the link is shown (or mailed) once, and a database dump cannot sign anyone in."""

    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, related_name="portal_links", verbose_name=_("partner")
    )
    token_hash = models.CharField(
        max_length=64, unique=True, editable=False, verbose_name=_("token hash")
    )
    label = models.CharField(
        _("label"), max_length=150, blank=True, help_text=_("Who the link is for (audit label).")
    )
    created_by = models.CharField(_("created by"), max_length=150, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"))
    used_at = models.DateTimeField(_("used"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("portal sign-in link")
        verbose_name_plural = _("portal sign-in links")
        # A support action like the others (its own permission, given to Support), not
        # the model's add permission: links are made by the service, never by a form.
        permissions = [("send_portal_link", "Can copy and e-mail portal sign-in links")]

    def __str__(self):
        return f"{self.partner} ({self.label or self.created_by})"

    @staticmethod
    def generate() -> tuple[str, str]:
        """A new raw token and its hash."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        return raw, PortalLink.hash(raw)

    @staticmethod
    def hash(raw: str) -> str:
        # 256 random bits: a fast hash is enough, there is nothing to stretch.
        return hashlib.sha256(raw.encode()).hexdigest()
