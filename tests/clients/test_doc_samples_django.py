"""The Django receiver in docs/receiving-webhooks.md, run as written: read from the
guide at test time, mounted in a separate Django project with the middleware
`startproject` turns on (CSRF included) and served by gunicorn, then sent real signed
deliveries by webhookhub's own engine."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from deliveries.models import Delivery, DeliveryStatus
from deliveries.services import event_replay
from deliveries.signing import webhook_headers
from events.services import publish
from tests.e2e.conftest import ROOT, wait_until
from tests.factories import PartnerFactory, make_endpoint
from tests.ops.conftest import free_port
from tests.queue import run_queue

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = ROOT / "docs" / "receiving-webhooks.md"

# The two functions the sample leaves to the reader ("yours: …"): a file stands in for
# the receiver's store, so the test sees what the view accepted.
READERS_PART = """

# The reader's part, stood in for by the test.
import json
import os


def already_processed(webhook_id):
    with open(os.environ["RECEIVED_FILE"], "a+") as f:
        f.seek(0)
        return any(json.loads(line)["webhook_id"] == webhook_id for line in f)


def enqueue(event):
    with open(os.environ["RECEIVED_FILE"], "a") as f:
        f.write(json.dumps({"webhook_id": event["id"], "event": event}) + "\\n")
"""

SETTINGS = """
SECRET_KEY = "doc-sample-receiver-not-secret-" + "x" * 30
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
ROOT_URLCONF = "receiver_urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
]
# What `django-admin startproject` writes: CsrfViewMiddleware is on.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "receiver.sqlite3"}}
USE_TZ = True
"""

URLS = """
from django.http import HttpResponse
from django.urls import path

import views


def unprotected(request):  # no @csrf_exempt: shows the CSRF middleware is really on
    return HttpResponse(status=204)


urlpatterns = [
    path("webhooks/", views.receive),
    path("plain/", unprotected),
]
"""


def django_sample() -> str:
    """The guide's Django view, exactly as a reader copies it."""
    found = re.findall(r"Django view[^\n]*\n\n```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert len(found) == 1, "the guide has one Django sample"
    return found[0]


class SampleReceiver:
    """gunicorn serving the sample in a project of its own (nothing of webhookhub's
    importable, nothing of its settings in the environment)."""

    def __init__(self, directory: Path, *, secret: str, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.received_file = directory / "received.jsonl"
        (directory / "views.py").write_text(django_sample() + READERS_PART)
        (directory / "receiver_settings.py").write_text(SETTINGS)
        (directory / "receiver_urls.py").write_text(URLS)
        (directory / "receiver_wsgi.py").write_text(
            "from django.core.wsgi import get_wsgi_application\n"
            "application = get_wsgi_application()\n"
        )
        self.log = directory / "gunicorn.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "receiver_wsgi", "--bind",
                 f"127.0.0.1:{port}", "--workers", "1"],
                cwd=directory,
                env={
                    "PATH": "/usr/bin:/bin",
                    "DJANGO_SETTINGS_MODULE": "receiver_settings",
                    "WEBHOOK_SECRET": secret,
                    "RECEIVED_FILE": str(self.received_file),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        wait_until(self._up, timeout=60, message=f"the sample receiver on {self.url}")

    def _up(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the sample receiver exited:\n{self.log.read_text()}")
        try:
            return requests.get(self.url + "/webhooks/", timeout=5).status_code == 405
        except requests.ConnectionError:
            return False

    def received(self) -> list[dict]:
        if not self.received_file.exists():
            return []
        return [json.loads(line) for line in self.received_file.read_text().splitlines()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@pytest.fixture
def sample_receiver(tmp_path):
    """`sample_receiver(secret, port)` -> the guide's view, served; stopped after the test."""
    started: list[SampleReceiver] = []

    def start(secret: str, port: int) -> SampleReceiver:
        started.append(SampleReceiver(tmp_path, secret=secret, port=port))
        return started[-1]

    yield start
    for receiver in started:
        receiver.stop()


def test_the_guides_django_view_accepts_a_real_delivery_with_csrf_middleware_on(
    event_types, sample_receiver
):
    port = free_port()
    url = f"http://127.0.0.1:{port}/webhooks/"
    endpoint = make_endpoint(PartnerFactory(name="Acme"), url=url, event_types=["order.paid"])
    # Another partner's endpoint at the same URL: signed with a secret the view does not know.
    stranger = make_endpoint(PartnerFactory(name="Stranger"), url=url, event_types=["order.paid"])
    receiver = sample_receiver(endpoint.signing_secret, port)
    assert requests.post(receiver.url + "/plain/", timeout=5).status_code == 403, (
        "CSRF middleware on: a view without @csrf_exempt refuses a POST"
    )

    event = publish("order.paid", {"order": {"id": 7, "amount": 4999}})
    assert run_queue() >= 1

    delivered = Delivery.objects.get(event=event, endpoint=endpoint)
    assert (delivered.status, delivered.last_status_code) == (DeliveryStatus.SUCCEEDED, 204), (
        delivered.last_error
    )
    (stored,) = receiver.received()
    assert stored["webhook_id"] == event.public_id
    assert stored["event"] == json.loads(event.body), "what the view verified and parsed"
    refused = Delivery.objects.get(event=event, endpoint=stranger)
    assert refused.status != DeliveryStatus.SUCCEEDED and refused.last_status_code == 400

    # The same bytes signed by the right secret, the body changed on the way: refused.
    timestamp = int(time.time())
    headers = webhook_headers(
        msg_id=event.public_id,
        timestamp=timestamp,
        body=event.body.encode(),
        secrets=[endpoint.signing_secret],
    )
    tampered = event.body.replace("4999", "1").encode()
    answer = requests.post(
        url, data=tampered, headers={**headers, "Content-Type": "application/json"}, timeout=5
    )
    assert answer.status_code == 400
    assert len(receiver.received()) == 1

    # A replay has the same webhook-id: acknowledged, and not stored a second time.
    assert event_replay(event, endpoint=endpoint, by="test") == 1
    run_queue()
    delivered.refresh_from_db()
    assert delivered.status == DeliveryStatus.SUCCEEDED and delivered.attempt_count == 2
    assert delivered.last_status_code == 204
    assert len(receiver.received()) == 1


def test_the_guides_django_view_answers_the_verification_challenge(
    event_types, sample_receiver, settings
):
    from deliveries.verification import endpoint_verification_send
    from endpoints.models import Endpoint

    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True
    port = free_port()
    endpoint = make_endpoint(
        PartnerFactory(name="Acme"), url=f"http://127.0.0.1:{port}/webhooks/",
        event_types=["order.paid"],
    )  # fmt: skip
    event = publish("order.paid", {"order": {"id": 8}})
    run_queue()  # the first challenge finds nobody listening: held, not delivered
    assert Delivery.objects.get(event=event).status == DeliveryStatus.PENDING
    receiver = sample_receiver(endpoint.signing_secret, port)

    endpoint_verification_send(endpoint, by="test")  # "verify again", now it is up
    run_queue()
    assert Endpoint.objects.get(pk=endpoint.pk).verified_at is not None
    delivered = Delivery.objects.get(event=event)
    assert (delivered.status, delivered.last_status_code) == (DeliveryStatus.SUCCEEDED, 204)
    (stored,) = receiver.received()  # the challenge was answered, not stored as an event
    assert stored["webhook_id"] == event.public_id
