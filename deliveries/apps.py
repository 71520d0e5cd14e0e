import logging
import threading

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate

DISPATCHER_SCHEDULE = "webhookhub: keep the dispatcher running"
HOUSEKEEPING_SCHEDULE = "webhookhub: failing-endpoint digest and expired secrets"
DASHBOARD_SCHEDULE = "webhookhub: refresh the admin dashboard figures"


def ensure_schedules(sender, **kwargs):
    """The watchdog that (re)starts the dispatcher loop every minute, and hourly
    housekeeping (failure digest mails, purge of expired rotated secrets)."""
    from django_q.models import Schedule

    for name, func, minutes in (
        (DISPATCHER_SCHEDULE, "deliveries.tasks.ensure_dispatcher", 1),
        (HOUSEKEEPING_SCHEDULE, "deliveries.tasks.housekeeping", 60),
        (DASHBOARD_SCHEDULE, "deliveries.tasks.refresh_dashboard", 1),
    ):
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
            },
        )


def start_dispatcher(sender, proc_name=None, **kwargs):
    """A freshly spawned worker makes sure a dispatcher loop is running (no 30 s wait
    for the scheduler after a cluster start)."""
    from deliveries.dispatch import LEADER_LEASE
    from deliveries.tasks import ensure_dispatcher

    def ensure():
        try:
            ensure_dispatcher()
        except Exception:  # the database may not be ready yet; the schedule retries
            logging.getLogger(__name__).exception("could not start the dispatcher")

    def ensure_later():
        try:
            ensure()
        finally:
            connections.close_all()  # this thread's own connection

    ensure()
    # A loop killed with its cluster still holds the lease for a few seconds: look again
    # once it has run out, rather than leave it to the every-minute schedule.
    timer = threading.Timer(LEADER_LEASE.total_seconds() + 1, ensure_later)
    timer.daemon = True
    timer.start()


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django_q.signals import post_spawn

        from deliveries import cluster, receivers  # noqa: F401  (connects the receivers)
        from webhookhub import notifiers

        notifiers.connect()  # WEBHOOKHUB_NOTIFIERS hear webhookhub.signals

        post_migrate.connect(ensure_schedules, sender=self)
        post_spawn.connect(cluster.worker_started, dispatch_uid="webhookhub-worker-started")
        post_spawn.connect(start_dispatcher, dispatch_uid="webhookhub-start-dispatcher")
