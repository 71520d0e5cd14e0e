from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    """The partner portal: partners' own screens over the endpoint and delivery services."""

    name = "portal"
    verbose_name = _("Partner portal")
    default_auto_field = "django.db.models.BigAutoField"
