"""`manage.py qcluster`: django-q2's cluster, stopping promptly on SIGTERM to its group.

django-q2's Sentinel takes SIGTERM's default action (it dies at once), and the main
process, on the same signal, sets the stop event the Sentinel used to wait on; a
multiprocessing Event then waits forever for that dead waiter to wake, so a cluster
whose whole process group got SIGTERM (what process managers and `docker stop` do)
never exits. Here the main process sees the Sentinel gone and just exits; the workers
wind down by themselves (deliveries.cluster). SIGTERM to the main process alone is
django-q2's own clean stop. (This app comes before django_q in INSTALLED_APPS so that
this command is the one `manage.py qcluster` runs.)
"""

import logging
import os
import time

from django.conf import settings
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as QClusterCommand

logger = logging.getLogger(__name__)


def _dead(pid: int) -> bool:
    """Gone or a zombie. (Not `Process.is_alive()`: this runs in a signal handler that
    may have interrupted the very waitpid() that reaped it, which is_alive then misses.)"""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


class GroupAwareCluster(Cluster):
    def sig_handler(self, signum, frame):
        sentinel = self.sentinel
        pid = sentinel.pid if sentinel is not None else None
        deadline = time.monotonic() + 0.5  # a group signal reaches every process at once
        while pid and not _dead(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid and _dead(pid):
            logger.info("qcluster: the whole process group was signalled; exiting")
            self.start_event = None  # start() stops waiting for it
            return
        super().sig_handler(signum, frame)


class Command(QClusterCommand):
    def handle(self, *args, **options):
        settings.SECRET_KEY  # noqa: B018  (signing needs it: fail now, not in a worker)
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = GroupAwareCluster()
        cluster.start()
        if options.get("run_once", False):
            cluster.stop()
