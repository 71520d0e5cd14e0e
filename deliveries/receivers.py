"""What the deliveries app does when endpoints change (endpoints knows nothing of it).

- a new endpoint gets its health row; one that is no longer ordered lets go of what its
  queue held;
- switched on: a fresh circuit, and the deliveries held while it was off are due now;
- switched off with `cancel_waiting`: its waiting deliveries are cancelled;
- either way `endpoint_enabled` / `endpoint_disabled` (`webhookhub.signals`) after commit;
- created or its URL changed while verification is required: a challenge is sent;
- verified: what was held for it goes now.
"""

from django.db.models.signals import post_save
from django.dispatch import receiver
from django.utils import timezone

from deliveries import health, lifecycle, notices
from deliveries.dispatch import wake_on_commit
from deliveries.models import Delivery
from deliveries.services import deliveries_cancel
from deliveries.verification import endpoint_verification_send
from endpoints.models import Endpoint
from endpoints.signals import endpoint_switched, endpoint_verified, verification_needed


@receiver(post_save, sender=Endpoint, dispatch_uid="deliveries-endpoint-health")
def endpoint_saved(sender, instance: Endpoint, created: bool, raw: bool = False, **kwargs):
    if created and not raw:
        health.ensure([instance.pk])
    elif (
        not raw
        and not instance.ordered
        # No longer ordered: whatever its queue held back may go (no-op otherwise).
        and lifecycle.release_held(instance.pk, now=timezone.now())
    ):
        wake_on_commit([instance.pk])


@receiver(endpoint_switched, dispatch_uid="deliveries-endpoint-switched")
def endpoint_switched_on_or_off(sender, endpoint: Endpoint, enabled: bool, by: str,
                                cancel_waiting: bool, **kwargs):  # fmt: skip
    now = timezone.now()
    if enabled:
        lifecycle.release_held(endpoint.pk, now=now)
        health.reset(endpoint.pk)
        wake_on_commit([endpoint.pk])
    elif cancel_waiting:
        deliveries_cancel(Delivery.objects.filter(endpoint_id=endpoint.pk), by=by)
    notices.endpoint_switched(endpoint.pk, enabled=enabled, by=by)


@receiver(verification_needed, dispatch_uid="deliveries-verification-needed")
def endpoint_needs_verification(sender, endpoint: Endpoint, by: str, **kwargs):
    endpoint_verification_send(endpoint, by=by)


@receiver(endpoint_verified, dispatch_uid="deliveries-endpoint-verified")
def endpoint_was_verified(sender, endpoint: Endpoint, by: str, **kwargs):
    # Its deliveries stayed due while held: waking its drain sends them.
    wake_on_commit([endpoint.pk])
