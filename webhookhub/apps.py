from django.contrib.admin.apps import AdminConfig


class WebhookhubAdminConfig(AdminConfig):
    """The Django admin with webhookhub's site: the dashboard is its home page.

    It is also the project's own app config: `ready()` registers webhookhub's system
    checks (webhookhub/checks.py) and sets up tracing (webhookhub/tracing.py) in every
    process: web, qcluster, commands.
    """

    default_site = "webhookhub.admin_site.WebhookhubAdminSite"

    def ready(self):
        super().ready()
        from webhookhub import (
            checks,  # noqa: F401  (registers the checks)
            tracing,
        )

        tracing.setup()  # only if OTEL_* configure an exporter (docs/operations.md#tracing)
