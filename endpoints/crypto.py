"""Secrets at rest: a model field that stores Fernet tokens and hands back plaintext.

Keys come from `WEBHOOKHUB_ENCRYPTION_KEY` (a comma-separated list, newest first). With
MultiFernet every listed key decrypts and the first one encrypts, so rotating the key is:
prepend a new key, run `manage.py rotate_encryption_key`, drop the old key.
"""

import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models

PREFIX = "fernet:"


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = settings.WEBHOOKHUB_ENCRYPTION_KEY
    if isinstance(keys, str):
        keys = [k for k in keys.split(",") if k.strip()]
    if not keys:
        raise ImproperlyConfigured(
            "WEBHOOKHUB_ENCRYPTION_KEY is not set: signing secrets and endpoint tokens "
            "cannot be stored. Generate one with `python -c 'from cryptography.fernet "
            "import Fernet; print(Fernet.generate_key().decode())'`."
        )
    try:
        return MultiFernet([Fernet(k.strip()) for k in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(f"WEBHOOKHUB_ENCRYPTION_KEY is not a Fernet key: {exc}") from exc


def _reset(setting, **kwargs):
    if setting == "WEBHOOKHUB_ENCRYPTION_KEY":
        _fernet.cache_clear()


setting_changed.connect(_reset)


def encrypt(plaintext: str) -> str:
    return PREFIX + _fernet().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        raise ValueError("stored value is not encrypted")
    try:
        return _fernet().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with WEBHOOKHUB_ENCRYPTION_KEY "
            "(was the key changed without keeping the old one?)"
        ) from None


def rotate(stored: str) -> str:
    """Re-encrypt with the newest key (for key rotation)."""
    return PREFIX + _fernet().rotate(stored[len(PREFIX) :].encode()).decode()


class EncryptedTextField(models.TextField):
    """A text column holding a Fernet token; Python sees the plaintext.

    Not searchable or orderable by content, by design. Empty strings and NULL are
    stored as they are.
    """

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)


class EncryptedJSONField(models.TextField):
    """A JSON-serialisable value (e.g. a list of old secrets) stored encrypted."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return None
        return json.loads(decrypt(value))

    def to_python(self, value):
        return value

    def get_prep_value(self, value):
        if value is None:
            return None
        return encrypt(json.dumps(value, separators=(",", ":")))


def seal(plaintext: str) -> str:
    """Encrypt a short-lived value: a secret on its way to the one page that shows it.
    The token carries its creation time, so `unseal` can refuse it once it is old."""
    return _fernet().encrypt(plaintext.encode()).decode()


def unseal(token: str, *, max_age: int) -> str | None:
    """The value `seal` encrypted, or None if it is older than `max_age` seconds or was
    not sealed with one of our keys."""
    try:
        return _fernet().decrypt(token.encode(), ttl=max_age).decode()
    except (InvalidToken, TypeError, ValueError):
        return None
