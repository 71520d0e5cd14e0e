"""Writes to partners, endpoints, subscriptions and API tokens, for every surface."""

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.models import Action
from audit.services import audit_record
from deliveries.signing import generate_key_pair, generate_secret
from endpoints.header_rules import keep_masked
from endpoints.models import ApiToken, Endpoint, Partner, Subscription
from endpoints.signals import (
    endpoint_switched,
    routing_changed,
    tokens_revoked,
    verification_needed,
)
from endpoints.validation import validate_auth_token
from endpoints.verification import verification_required

DEFAULT_ROTATION_GRACE = timedelta(hours=24)
MAX_ROTATION_GRACE = timedelta(days=7)
MAX_PREVIOUS_SECRETS = 5


def partner_create(*, name: str, contact_email: str = "") -> Partner:
    partner = Partner(name=name, contact_email=contact_email)
    partner.full_clean()
    partner.save()
    return partner


@transaction.atomic
def api_token_create(
    *, role: str, partner: Partner | None = None, name: str = "", by: str = ""
) -> tuple[ApiToken, str]:
    """Create an API token; returns it and the raw value, which is never stored."""
    if role == ApiToken.Role.PUBLISHER and partner is not None:
        raise ValidationError({"partner": "A publisher token is not tied to a partner."})
    raw, prefix, key_hash = ApiToken.generate()
    token = ApiToken(
        role=role, partner=partner, name=name, prefix=prefix, key_hash=key_hash, created_by=by
    )
    token.full_clean()
    token.save()
    audit_record(Action.API_TOKEN_CREATED, token, by=by, details={"role": role})
    return token, raw


@transaction.atomic
def endpoint_create(
    partner: Partner,
    *,
    name: str,
    url: str,
    event_types: Iterable[str] = ("*",),
    by: str,
    **fields,
) -> Endpoint:
    """Create an endpoint with a fresh signing secret and its subscriptions.

    `fields` are other Endpoint fields (description, headers, timeout_seconds,
    retry_policy, rate_limit_per_second, filter, ordered, auth_token, send_traceparent).
    The secret is readable once on the returned object (`signing_secret`) — show it, then forget it.
    """
    validate_auth_token(fields.get("auth_token", ""))
    endpoint = endpoint_save(Endpoint(partner=partner, name=name, url=url, **fields), by=by)
    subscriptions_set(endpoint, event_types)
    return endpoint


# The settings an edit is audited for (by name: values may be credentials).
AUDITED_FIELDS = (
    "partner_id",
    "name",
    "url",
    "description",
    "headers",
    "auth_token",
    "timeout_seconds",
    "retry_policy",
    "rate_limit_per_second",
    "filter",
    "ordered",
    "max_in_flight",
    "signature_scheme",
    "send_traceparent",
)


VERIFICATION_FIELDS = ("verified_at", "verification_sent_at", "verification_challenge_hash")


@transaction.atomic
def endpoint_save(endpoint: Endpoint, *, by: str, reason: str = "") -> Endpoint:
    """Validate and save an endpoint's own fields; a new one gets its signing secret.
    Audited: a new endpoint, or the names of the settings that changed. While
    verification is required, a new endpoint or a new URL is sent a challenge (the
    deliveries app, hearing `verification_needed`)."""
    if not endpoint.signing_secret:
        endpoint.signing_secret = generate_secret()
    if not endpoint.signing_key:
        # Every endpoint has its ed25519 pair, so a partner can set up v1a verification
        # before switching `signature_scheme` to it.
        endpoint.signing_key, endpoint.public_key = generate_key_pair()
    endpoint.full_clean()
    before = Endpoint.objects.filter(pk=endpoint.pk).first() if endpoint.pk else None
    if before is not None:
        # Written only by endpoints.verification: a form's older copy must not undo it.
        for name in VERIFICATION_FIELDS:
            setattr(endpoint, name, getattr(before, name))
    endpoint.save()
    if before is None:
        audit_record(Action.ENDPOINT_CREATED, endpoint, by=by, reason=reason)
    else:
        changed = [
            name.removesuffix("_id")
            for name in AUDITED_FIELDS
            if getattr(before, name) != getattr(endpoint, name)
        ]
        if changed:
            audit_record(
                Action.ENDPOINT_UPDATED,
                endpoint,
                by=by,
                reason=reason,
                details={"changed": changed},
            )
    if verification_required() and (before is None or before.url != endpoint.url):
        verification_needed.send(sender=Endpoint, endpoint=endpoint, by=by)
    return endpoint


def subscriptions_set(
    endpoint: Endpoint,
    event_types: Iterable,
    *,
    filters: dict | None = None,
    by: str | None = None,
) -> None:
    """Replace an endpoint's subscriptions with `event_types` (names or wildcards).

    `event_types` items are strings, or dicts `{"event_type", "filter"}`. With `by`, a
    change is audited (a new endpoint's first subscriptions are part of its creation).
    """
    wanted: dict[str, dict | None] = {}
    for item in event_types:
        if isinstance(item, dict):
            wanted[item.get("event_type")] = item.get("filter")
        else:
            wanted[item] = (filters or {}).get(item)
    if not wanted:
        raise ValidationError({"event_types": "Subscribe to at least one event type (or `*`)."})
    rows = []
    for pattern, spec in wanted.items():
        subscription = Subscription(endpoint=endpoint, event_type=pattern, filter=spec)
        subscription.full_clean(exclude=["endpoint"], validate_unique=False)
        rows.append(subscription)
    with transaction.atomic():
        before = dict(endpoint.subscriptions.values_list("event_type", "filter"))
        endpoint.subscriptions.exclude(event_type__in=list(wanted)).delete()
        existing = {s.event_type: s for s in endpoint.subscriptions.all()}
        for row in rows:
            if row.event_type in existing:
                current = existing[row.event_type]
                if current.filter != row.filter:
                    current.filter = row.filter
                    current.save(update_fields=["filter"])
            else:
                row.save()
        if by is not None and before != wanted:
            audit_record(
                Action.ENDPOINT_UPDATED,
                endpoint,
                by=by,
                details={"changed": ["event_types"], "event_types": sorted(wanted)},
            )


@transaction.atomic
def endpoint_disable(
    endpoint: Endpoint,
    *,
    by: str,
    reason: str = "",
    kind: str = Endpoint.DisabledBy.MANUAL,
    cancel_waiting: bool = False,
) -> bool:
    """Switch an endpoint off. Its waiting deliveries are kept (not sent, not dead) and
    go out when it is switched on again — or are cancelled with `cancel_waiting` (the
    deliveries app does that, hearing `endpoint_switched`). Returns False if it was
    already off."""
    now = timezone.now()
    updated = Endpoint.objects.filter(pk=endpoint.pk, enabled=True).update(
        enabled=False,
        disabled_at=now,
        disabled_reason=(reason or "switched off")[:500],
        disabled_kind=kind,
        disabled_by=by,
        updated_at=now,
    )
    if updated:
        audit_record(
            Action.ENDPOINT_DISABLED,
            endpoint,
            by=by,
            reason=reason,
            details={"kind": kind, "cancel_waiting": cancel_waiting},
        )
        routing_changed.send(sender=Endpoint, endpoint_ids=[endpoint.pk])
        endpoint_switched.send(
            sender=Endpoint, endpoint=endpoint, enabled=False, by=by, cancel_waiting=cancel_waiting
        )
    endpoint.refresh_from_db()
    return bool(updated)


@transaction.atomic
def endpoint_enable(endpoint: Endpoint, *, by: str, reason: str = "") -> bool:
    """Switch an endpoint on. The deliveries app (hearing `endpoint_switched`) gives it a
    fresh circuit and makes the deliveries held while it was off due at once. False if
    it was already on."""
    now = timezone.now()
    updated = Endpoint.objects.filter(pk=endpoint.pk, enabled=False).update(
        enabled=True,
        disabled_at=None,
        disabled_reason="",
        disabled_kind="",
        disabled_by="",
        updated_at=now,
    )
    if updated:
        audit_record(Action.ENDPOINT_ENABLED, endpoint, by=by, reason=reason)
        routing_changed.send(sender=Endpoint, endpoint_ids=[endpoint.pk])
        endpoint_switched.send(
            sender=Endpoint, endpoint=endpoint, enabled=True, by=by, cancel_waiting=False
        )
    endpoint.refresh_from_db()
    return bool(updated)


@transaction.atomic
def endpoint_rotate_secret(
    endpoint: Endpoint, *, by: str, grace: timedelta = DEFAULT_ROTATION_GRACE
) -> str:
    """Give the endpoint a new signing secret now; the old one keeps signing beside it
    until `grace` has passed (at most 7 days). Returns the new secret."""
    if grace < timedelta(0) or grace > MAX_ROTATION_GRACE:
        raise ValidationError({"grace": "The grace period must be between 0 and 7 days."})
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    now = timezone.now()
    keep = endpoint.previous_secrets_in_force(now)
    if grace > timedelta(0):
        keep.insert(0, {"secret": endpoint.signing_secret, "expires_at": (now + grace).isoformat()})
    endpoint.previous_secrets = keep[:MAX_PREVIOUS_SECRETS] or None
    endpoint.signing_secret = generate_secret()
    endpoint.save(update_fields=["signing_secret", "previous_secrets", "updated_at"])
    audit_record(
        Action.SECRET_ROTATED,
        endpoint,
        by=by,
        details={"grace_seconds": int(grace.total_seconds())},
    )
    return endpoint.signing_secret


@transaction.atomic
def endpoint_rotate_key(
    endpoint: Endpoint, *, by: str, grace: timedelta = DEFAULT_ROTATION_GRACE
) -> str:
    """Give the endpoint a new ed25519 key pair now; the old secret key keeps signing
    (`v1a`) beside the new one until `grace` has passed (at most 7 days), as secrets do
    on `endpoint_rotate_secret`. Returns the new public key."""
    if grace < timedelta(0) or grace > MAX_ROTATION_GRACE:
        raise ValidationError({"grace": "The grace period must be between 0 and 7 days."})
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    now = timezone.now()
    keep = endpoint.previous_keys_in_force(now)
    if grace > timedelta(0) and endpoint.signing_key:
        keep.insert(
            0,
            {
                "secret_key": endpoint.signing_key,
                "public_key": endpoint.public_key,
                "expires_at": (now + grace).isoformat(),
            },
        )
    endpoint.previous_keys = keep[:MAX_PREVIOUS_SECRETS] or None
    endpoint.signing_key, endpoint.public_key = generate_key_pair()
    endpoint.save(update_fields=["signing_key", "public_key", "previous_keys", "updated_at"])
    audit_record(
        Action.KEY_ROTATED,
        endpoint,
        by=by,
        details={"grace_seconds": int(grace.total_seconds()), "public_key": endpoint.public_key},
    )
    return endpoint.public_key


def endpoints_purge_expired_secrets() -> int:
    """Forget rotated-out secrets and ed25519 keys whose grace period is over; returns
    how many endpoints changed."""
    now = timezone.now()
    changed = 0
    holding = Endpoint.objects.filter(
        Q(previous_secrets__isnull=False) | Q(previous_keys__isnull=False)
    )
    for pk in holding.values_list("pk", flat=True):
        with transaction.atomic():
            endpoint = Endpoint.objects.select_for_update().get(pk=pk)
            secrets_kept = endpoint.previous_secrets_in_force(now)
            keys_kept = endpoint.previous_keys_in_force(now)
            before = (endpoint.previous_secrets or [], endpoint.previous_keys or [])
            if (secrets_kept, keys_kept) != before:
                endpoint.previous_secrets = secrets_kept or None
                endpoint.previous_keys = keys_kept or None
                endpoint.save(update_fields=["previous_secrets", "previous_keys", "updated_at"])
                changed += 1
    return changed


@transaction.atomic
def endpoint_regenerate_token(endpoint: Endpoint, *, by: str) -> str:
    """Replace the bearer token sent to the endpoint, at once. Returns the new token."""
    endpoint.auth_token = secrets.token_urlsafe(32)
    endpoint.save(update_fields=["auth_token", "updated_at"])
    audit_record(Action.TOKEN_REGENERATED, endpoint, by=by)
    return endpoint.auth_token


TOKEN_TOUCH_INTERVAL = timedelta(minutes=1)


@transaction.atomic
def api_tokens_revoke(queryset, *, by: str = "", reason: str = "") -> int:
    """Revoke the usable tokens among `queryset`; returns how many. They stop working
    at once in this process and within WEBHOOKHUB_API_TOKEN_CACHE_SECONDS everywhere."""
    ids = list(queryset.filter(revoked_at__isnull=True).values_list("pk", flat=True))
    now = timezone.now()
    revoked = ApiToken.objects.filter(pk__in=ids, revoked_at__isnull=True).update(revoked_at=now)
    if revoked:
        for token in ApiToken.objects.filter(pk__in=ids, revoked_at=now):
            audit_record(Action.API_TOKEN_REVOKED, token, by=by, reason=reason)
        tokens_revoked.send(sender=ApiToken, token_ids=ids)
    return revoked


def api_token_touch(token: ApiToken, *, now: datetime | None = None) -> bool:
    """Record that `token` was used, at most once a minute whatever the request rate.

    The UPDATE is conditional, so concurrent requests from many processes write the
    row once per interval; a token used within the last minute costs no write at all.
    Returns True if this call wrote.
    """
    now = now or timezone.now()
    stale_before = now - TOKEN_TOUCH_INTERVAL
    if token.last_used_at is not None and token.last_used_at > stale_before:
        return False
    written = (
        ApiToken.objects.filter(pk=token.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale_before))
        .update(last_used_at=now)
    )
    token.last_used_at = now
    return bool(written)


ENDPOINT_UPDATABLE = frozenset(
    {
        "name",
        "url",
        "description",
        "headers",
        "timeout_seconds",
        "retry_policy",
        "rate_limit_per_second",
        "filter",
        "ordered",
        "max_in_flight",
        "auth_token",
        "signature_scheme",
        "send_traceparent",
    }
)


@transaction.atomic
def endpoint_update(
    endpoint: Endpoint,
    *,
    by: str,
    event_types: Iterable | None = None,
    enabled: bool | None = None,
    reason: str = "",
    **fields,
) -> Endpoint:
    """Change an endpoint's settings, its subscriptions and/or its On/Off switch at once.

    `fields` are among `ENDPOINT_UPDATABLE`; `event_types` (if given) replaces the
    subscriptions like `subscriptions_set`; `enabled` goes through `endpoint_enable` /
    `endpoint_disable` so the switch keeps its who/why/when. All or nothing.

    `headers` replaces the custom headers; a value sent back in the masked form it is
    shown in (`••••1234`) keeps the header's current value.
    """
    unknown = set(fields) - ENDPOINT_UPDATABLE
    if unknown:
        raise ValueError(f"endpoint_update cannot change {sorted(unknown)}")
    # A fresh, locked row: a concurrent rotation or switch is not overwritten.
    endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
    if "auth_token" in fields:
        validate_auth_token(fields["auth_token"])
    if isinstance(fields.get("headers"), dict):
        fields["headers"] = keep_masked(fields["headers"], endpoint.headers)
    if fields:
        for name, value in fields.items():
            setattr(endpoint, name, value)
        endpoint_save(endpoint, by=by, reason=reason)
    if event_types is not None:
        subscriptions_set(endpoint, event_types, by=by)
    if enabled is True:
        endpoint_enable(endpoint, by=by, reason=reason)
    elif enabled is False:
        endpoint_disable(endpoint, by=by, reason=reason or f"switched off by {by}")
    return endpoint


@transaction.atomic
def endpoint_delete(endpoint: Endpoint, *, by: str) -> None:
    """Delete an endpoint with its subscriptions, deliveries and attempts.

    Events stay (they may have gone to other endpoints). The row is locked first so a
    concurrent publish referencing it finishes (or waits) before it goes.
    """
    Endpoint.objects.select_for_update().filter(pk=endpoint.pk).first()
    audit_record(Action.ENDPOINT_DELETED, endpoint, by=by, details={"url": endpoint.url})
    endpoint.delete()
