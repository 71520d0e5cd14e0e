"""Finding F1: a test event never runs inside a web request.

Real gunicorn (one worker, a 3 s worker timeout), a real qcluster, and a receiver that
drips its answer one byte every 0.5 s for longer than gunicorn would wait: the API
answers at once, /healthz stays responsive, and the test is sent exactly once.
"""

import socket
import threading
import time

import pytest
import requests

from deliveries.models import Delivery, DeliveryStatus, Trigger
from endpoints.services import api_token_create
from tests.e2e.conftest import wait_until
from tests.factories import PartnerFactory, make_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.xdist_group("ops")]


class DrippingReceiver:
    """Answers 200 with a 40-byte body, one byte every `interval` seconds."""

    def __init__(self, *, interval: float = 0.5, length: int = 40):
        self.interval, self.length = interval, length
        self.requests = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {self.length}\r\n\r\n"
            try:
                conn.sendall(head.encode())
                for _ in range(self.length):
                    if self.closed.wait(self.interval):
                        return
                    conn.sendall(b".")
            except OSError:
                return  # the sender gave up (its deadline passed)

    def close(self):
        self.closed.set()
        self.sock.close()


@pytest.fixture
def dripping():
    receiver = DrippingReceiver()
    yield receiver
    receiver.close()


def test_test_event_to_a_dripping_receiver_never_holds_a_web_worker(
    event_types, dripping, start_web, start_cluster
):
    partner = PartnerFactory()
    # 6 s per attempt: twice gunicorn's worker timeout below. The drip needs 20 s.
    endpoint = make_endpoint(partner=partner, url=dripping.url, timeout_seconds=6)
    _, token = api_token_create(role="partner", partner=partner)
    start_cluster()
    web = start_web(workers=1, args=("--timeout", "3"))
    headers = {"Authorization": f"Bearer {token}"}

    started = time.monotonic()
    response = requests.post(
        f"{web.url}/api/v1/endpoints/{endpoint.public_id}/test/", headers=headers, timeout=30
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 202, response.text
    assert elapsed < 2.0, f"the API call took {elapsed:.1f} s"
    body = response.json()
    assert body["delivery"].startswith("dlv_") and body["url"].endswith(f"/{body['delivery']}/")

    wait_until(lambda: dripping.requests == 1, timeout=15, message="the worker sends the test")
    # While the worker waits on the drip, the single web worker still answers at once.
    for _ in range(3):
        started = time.monotonic()
        assert requests.get(f"{web.url}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
        time.sleep(0.5)

    def finished():
        polled = requests.get(body["url"], headers=headers, timeout=5).json()
        return polled if polled["status"] in ("succeeded", "dead") else None

    polled = wait_until(finished, timeout=30, message="the test's attempt is recorded")
    assert polled["status"] == "dead", "a test is never retried"
    (attempt,) = polled["attempts"]
    assert attempt["error_kind"] == "timeout" and attempt["trigger"] == "test"
    delivery = Delivery.objects.get(public_id=body["delivery"])
    assert delivery.next_trigger == Trigger.TEST and delivery.status == DeliveryStatus.DEAD
    time.sleep(2)
    assert dripping.requests == 1, "the test was sent exactly once"
    assert "WORKER TIMEOUT" not in web.output()


def test_test_event_answer_within_the_short_wait_comes_back_as_200(
    event_types, receiver, start_web, start_cluster
):
    partner = PartnerFactory()
    endpoint = make_endpoint(partner=partner, url=receiver.url_for("/t"))
    _, token = api_token_create(role="partner", partner=partner)
    start_cluster()
    web = start_web(workers=1, env={"WEBHOOKHUB_TEST_WAIT_SECONDS": "5"})
    response = requests.post(
        f"{web.url}/api/v1/endpoints/{endpoint.public_id}/test/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["succeeded"] is True and result["attempt"]["response_status_code"] == 200
    (request,) = receiver.requests
    assert request.json()["type"] == "webhookhub.test"
