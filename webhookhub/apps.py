from django.contrib.admin.apps import AdminConfig


class WebhookhubAdminConfig(AdminConfig):
    """The Django admin with webhookhub's site: the dashboard is its home page."""

    default_site = "webhookhub.admin_site.WebhookhubAdminSite"
