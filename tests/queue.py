"""Running the ORM broker's queue in the test process, as a worker would."""

from django_q.models import OrmQ

from deliveries import engine


def run_queue() -> int:
    """Run what the broker holds through the real engine (not a mock); returns how many
    delivery tasks ran."""
    ran = 0
    for row in OrmQ.objects.order_by("id"):
        task = row.task
        row.delete()
        if task["func"] == "deliveries.tasks.deliver":
            engine.deliver(task["args"][0], token=task["kwargs"].get("token"))
            ran += 1
    return ran
