from django.apps import AppConfig
from django.db.models.signals import post_migrate

DISPATCHER_SCHEDULE = "webhookhub: keep the dispatcher running"


def ensure_schedules(sender, **kwargs):
    """The watchdog schedule that (re)starts the dispatcher loop every minute."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=DISPATCHER_SCHEDULE,
        defaults={
            "func": "deliveries.tasks.ensure_dispatcher",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


def start_dispatcher(sender, proc_name=None, **kwargs):
    """A freshly spawned worker makes sure a dispatcher loop is running (no 30 s wait
    for the scheduler after a cluster start)."""
    from deliveries.tasks import ensure_dispatcher

    try:
        ensure_dispatcher()
    except Exception:  # the database may not be ready yet; the schedule retries
        import logging

        logging.getLogger(__name__).exception("could not start the dispatcher")


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django_q.signals import post_spawn

        post_migrate.connect(ensure_schedules, sender=self)
        post_spawn.connect(start_dispatcher, dispatch_uid="webhookhub-start-dispatcher")
