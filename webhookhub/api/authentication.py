"""`Authorization: Bearer <token>` against hashed ApiTokens.

The token's clear prefix finds the row (one indexed query); the SHA-256 of the whole
token is then compared in constant time. Revoked or expired tokens, and tokens of an
inactive partner, are refused with 401.
"""

import hmac

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from endpoints.models import ApiToken
from endpoints.services import api_token_touch

TOKEN_PREFIX = "whk_"
MAX_TOKEN_LENGTH = 200


class ApiClient:
    """Who is calling: the token, its role and, for a partner token, its partner.

    Stands in for `request.user` in API views; `actor` is what services record as `by=`.
    """

    is_authenticated = True
    is_anonymous = False

    def __init__(self, token: ApiToken) -> None:
        self.token = token
        self.role = token.role
        self.partner = token.partner if token.role == ApiToken.Role.PARTNER else None

    @property
    def is_partner(self) -> bool:
        return self.role == ApiToken.Role.PARTNER

    @property
    def is_publisher(self) -> bool:
        return self.role == ApiToken.Role.PUBLISHER

    @property
    def actor(self) -> str:
        return f"api:{self.token.prefix}"

    def __str__(self) -> str:
        return self.actor


class ApiTokenAuthentication(BaseAuthentication):
    """Bearer tokens only; no session, no CSRF (the API has no cookie-based access)."""

    keyword = b"bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword or len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Send the token as `Authorization: Bearer <token>`."
            )
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        token = self.token_for(raw)
        now = timezone.now()
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token has been revoked.")
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("This token has expired.")
        if token.partner_id is not None and not token.partner.is_active:
            raise exceptions.AuthenticationFailed("This token's partner is inactive.")
        api_token_touch(token, now=now)
        return ApiClient(token), token

    @staticmethod
    def token_for(raw: str) -> ApiToken:
        if not raw.startswith(TOKEN_PREFIX) or len(raw) > MAX_TOKEN_LENGTH:
            raise exceptions.AuthenticationFailed("Invalid token.")
        try:  # `prefix` is unique: one index lookup
            token = ApiToken.objects.select_related("partner").get(
                prefix=raw[: ApiToken.PREFIX_LENGTH]
            )
        except ApiToken.DoesNotExist:
            token = None
        # Hash either way, so that an unknown prefix costs the same as a wrong secret.
        presented = ApiToken.hash(raw)
        if token is None or not hmac.compare_digest(token.key_hash, presented):
            raise exceptions.AuthenticationFailed("Invalid token.")
        return token

    def authenticate_header(self, request):
        return 'Bearer realm="webhookhub"'
