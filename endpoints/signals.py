"""Signals endpoints sends for code that depends on it (events, deliveries) to hear.

`routing_changed`: which endpoints receive events changed without a model save (an
endpoint switched on or off by a conditional UPDATE). Receivers forget what they
cached about routing, e.g. `events.routing`.

`tokens_revoked`: API tokens were revoked by a conditional UPDATE; the API's token
cache (webhookhub.api.authentication) forgets them.
"""

from django.dispatch import Signal

routing_changed = Signal()  # kwargs: endpoint_ids
tokens_revoked = Signal()  # kwargs: token_ids
