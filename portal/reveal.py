"""Secrets shown once in the portal (a new signing secret, a generated token).

As the admin's `show_once`: the session holds the values only sealed with the
encryption key, for a few minutes, for exactly one page view; the page is served
`Cache-Control: no-store`.
"""

from django.shortcuts import redirect
from django.urls import reverse

from endpoints.crypto import seal, unseal
from webhookhub.admin_utils import SHOWN_ONCE_MAX_AGE

REVEAL_KEY = "webhookhub_portal_reveal"


def reveal_once(request, *, title: str, items: list[tuple[str, str]], back_url: str, note=""):
    """Keep `items` ((label, secret) pairs) for one view of the reveal page and go there."""
    request.session[REVEAL_KEY] = {
        "title": str(title),
        "items": [{"label": str(label), "sealed": seal(value)} for label, value in items],
        "back_url": back_url,
        "note": str(note),
    }
    return redirect(reverse("portal:shown_once"))


def reveal_pop(request) -> dict | None:
    """What `reveal_once` kept, decrypted, and forget it; None if nothing or too old."""
    kept = request.session.pop(REVEAL_KEY, None)
    if not isinstance(kept, dict):
        return None
    items = []
    for item in kept.get("items", ()):
        value = unseal(item.get("sealed", ""), max_age=SHOWN_ONCE_MAX_AGE)
        if value is None:
            return None
        items.append({"label": item["label"], "value": value})
    return {**kept, "items": items}
