"""The admin's structured endpoint widgets, rendered with the portal's previews.

Same widgets (console.endpoint_widgets: the same rows, the same JSON, the same retry
preview by the workers' policy function); only the two templates that link to a preview
page are the portal's own, since the admin's preview pages need a staff login.
"""

from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from console.endpoint_widgets import FilterWidget, RetryPolicyWidget


class PortalRetryPolicyWidget(RetryPolicyWidget):
    def render(self, name, value, attrs=None, renderer=None):
        context = self.get_context(name, value, attrs)
        return mark_safe(render_to_string("portal/widgets/retry_policy.html", context))  # noqa: S308


class PortalFilterWidget(FilterWidget):
    def render(self, name, value, attrs=None, renderer=None):
        context = self.get_context(name, value, attrs)
        return mark_safe(render_to_string("portal/widgets/filter.html", context))  # noqa: S308
