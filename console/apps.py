from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConsoleConfig(AppConfig):
    """The support console: the customized admin over partners, endpoints and their
    deliveries. It has no models of its own: what it registers is listed under each
    model's own app, as before."""

    name = "console"
    label = "console"
    verbose_name = _("Support console")
