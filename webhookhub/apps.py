from django.contrib.admin.apps import AdminConfig


class WebhookhubAdminConfig(AdminConfig):
    """The Django admin with webhookhub's site: the dashboard is its home page.

    It is also the project's own app config: `ready()` registers webhookhub's system
    checks (webhookhub/checks.py).
    """

    default_site = "webhookhub.admin_site.WebhookhubAdminSite"

    def ready(self):
        super().ready()
        from webhookhub import checks  # noqa: F401  (registers the checks)
