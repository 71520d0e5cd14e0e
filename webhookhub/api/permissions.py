"""Token roles per action: each ViewSet says which roles may run which action."""

from rest_framework.permissions import BasePermission

from endpoints.models import ApiToken
from webhookhub.api.authentication import ApiClient

PARTNER = ApiToken.Role.PARTNER.value
PUBLISHER = ApiToken.Role.PUBLISHER.value
ANY_ROLE = frozenset({PARTNER, PUBLISHER})


def roles_for(view, action: str | None) -> frozenset[str]:
    """The roles `view.roles` allows for `action` (its `"*"` entry otherwise)."""
    roles = getattr(view, "roles", {})
    return frozenset(roles.get(action, roles.get("*", ())))


class HasRole(BasePermission):
    """Allows an authenticated token whose role the view names for this action.

    A wrong role is a 403 that names the role needed: it reveals nothing about any
    object (objects outside the token's scope are 404s, see `scoping`).
    """

    def has_permission(self, request, view) -> bool:
        client = request.user
        if not isinstance(client, ApiClient):
            return False
        allowed = roles_for(view, getattr(view, "action", None))
        if client.role in allowed:
            return True
        self.message = f"This needs a {' or '.join(sorted(allowed)) or 'different'} token."
        return False
