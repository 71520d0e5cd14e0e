"""Signals endpoints sends for code that depends on it (events, deliveries) to hear.

`routing_changed`: which endpoints receive events changed without a model save (an
endpoint switched on or off by a conditional UPDATE). Receivers forget what they
cached about routing, e.g. `events.routing`.

`endpoint_switched`: an endpoint was switched on or off (inside the transaction that
did it). The deliveries app acts on the endpoint's deliveries and health: held
deliveries become due and the circuit starts fresh when it is switched on; waiting
deliveries are cancelled when it is switched off with `cancel_waiting`.

`verification_needed`: an endpoint was created or its URL changed while verification
is required (inside the transaction). The deliveries app sends it a challenge.

`endpoint_verified`: an endpoint answered its challenge (or a partner pasted it); the
deliveries app sends what was held for it.

`tokens_revoked`: API tokens were revoked by a conditional UPDATE; the API's token
cache (webhookhub.api.authentication) forgets them.
"""

from django.dispatch import Signal

routing_changed = Signal()  # kwargs: endpoint_ids
endpoint_switched = Signal()  # kwargs: endpoint, enabled, by, cancel_waiting
verification_needed = Signal()  # kwargs: endpoint, by
endpoint_verified = Signal()  # kwargs: endpoint, by
tokens_revoked = Signal()  # kwargs: token_ids
