"""`Authorization: Bearer <token>` against hashed ApiTokens.

The token's clear prefix finds the row (one indexed query); the SHA-256 of the whole
token is then compared in constant time. Revoked or expired tokens, and tokens of an
inactive partner, are refused with 401.

A token found is remembered by this process for WEBHOOKHUB_API_TOKEN_CACHE_SECONDS (5 s
by default; 0: never), keyed by its hash, so a busy publisher costs one query per token
per process every few seconds instead of one per request. Revoking a token or
deactivating a partner applies at once in the process that did it and within those
seconds everywhere else.
"""

import hmac
import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from endpoints.models import ApiToken, Partner
from endpoints.services import api_token_touch
from endpoints.signals import tokens_revoked

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
        presented = ApiToken.hash(raw)
        cached = _tokens.get(presented)
        if cached is not None:
            return cached
        try:  # `prefix` is unique: one index lookup
            token = ApiToken.objects.select_related("partner").get(
                prefix=raw[: ApiToken.PREFIX_LENGTH]
            )
        except ApiToken.DoesNotExist:
            token = None
        # Compare either way, so that an unknown prefix costs the same as a wrong secret.
        if token is None or not hmac.compare_digest(token.key_hash, presented):
            raise exceptions.AuthenticationFailed("Invalid token.")
        _tokens.put(presented, token)
        return token

    def authenticate_header(self, request):
        return 'Bearer realm="webhookhub"'


class _TokenCache:
    """Tokens found, by hash, for a few seconds. Only valid tokens are kept (an attacker
    guessing cannot fill it), and at most `MAX` of them."""

    MAX = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ApiToken]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> ApiToken | None:
        hit = self._entries.get(key)
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1]

    def put(self, key: str, token: ApiToken) -> None:
        ttl = settings.WEBHOOKHUB_API_TOKEN_CACHE_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.MAX:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + ttl, token)

    def clear(self, **_kwargs) -> None:
        with self._lock:
            self._entries.clear()


_tokens = _TokenCache()
for _model in (ApiToken, Partner):
    post_save.connect(_tokens.clear, sender=_model, dispatch_uid=f"token-cache-{_model.__name__}")
    post_delete.connect(_tokens.clear, sender=_model, dispatch_uid=f"token-del-{_model.__name__}")
tokens_revoked.connect(_tokens.clear, dispatch_uid="token-cache-revoked")
