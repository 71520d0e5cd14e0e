"""Running the ORM broker's queue in the test process, as a worker would."""

from django.utils import timezone
from django_q.models import OrmQ

from deliveries import engine
from deliveries.models import Delivery


def run_queue() -> int:
    """Run what the broker holds through the real engine (not a mock); returns how many
    drain tasks ran."""
    ran = 0
    for row in OrmQ.objects.order_by("id"):
        task = row.task
        row.delete()
        if task["func"] == "deliveries.tasks.drain":
            engine.drain(task["args"][0], linger=0)
            ran += 1
    return ran


def queued_endpoints() -> list[int]:
    """The endpoint ids the queued drain tasks name."""
    return [
        pk
        for row in OrmQ.objects.order_by("id")
        if row.task["func"] == "deliveries.tasks.drain"
        for pk in row.task["args"][0]
    ]


def take(ids) -> tuple[str, list]:
    """Claim exactly these deliveries as a worker would (if they are due), without
    sending them: a worker that took them … and then, say, died. Returns the lease
    token and the claimed deliveries."""
    import uuid

    from django.utils import timezone

    from deliveries import lifecycle
    from deliveries.models import Delivery
    from endpoints.models import Endpoint

    token, now = uuid.uuid4().hex, timezone.now()
    rows = Delivery.objects.filter(pk__in=list(ids))
    leases = {
        e.pk: engine.lease_for(e.timeout_seconds)
        for e in Endpoint.objects.filter(pk__in=rows.values("endpoint_id"))
    }
    taken = lifecycle.claim_ids(ids, token=token, lease_by_endpoint=leases, now=now)
    return token, sorted(taken, key=lambda d: d.pk)


def due_ids(endpoint) -> list[int]:
    """Ids of the endpoint's deliveries waiting and due now (what a woken drain takes)."""
    return list(
        Delivery.objects.filter(
            endpoint=endpoint,
            next_attempt_at__lte=timezone.now(),
            status__in=["pending", "retrying"],
        ).values_list("pk", flat=True)
    )
