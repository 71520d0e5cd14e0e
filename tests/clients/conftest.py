"""The publisher client against a live webhookhub: real gunicorn, real HTTP, the test
database (transactional: the server's workers must see committed rows)."""

import pytest
import requests
from django.db import connection

from endpoints.models import ApiToken
from endpoints.services import api_token_create
from tests.clients.proxy import FlakyProxy
from tests.ops.conftest import Web


@pytest.fixture
def start_hub(transactional_db):
    """`start_hub(env=…)` -> a gunicorn serving webhookhub (one worker: one process
    counts the rate limits), stopped after the test."""
    servers: list[Web] = []

    def start(env: dict | None = None) -> Web:
        server = Web(env=env, workers=1)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    connection.close()


@pytest.fixture
def hub(start_hub) -> Web:
    return start_hub()


@pytest.fixture
def publisher_token(transactional_db) -> str:
    _, raw = api_token_create(role=ApiToken.Role.PUBLISHER, name="client tests", by="test")
    return raw


@pytest.fixture
def proxies():
    """`proxies(upstream, plan)` -> a FlakyProxy, closed after the test."""
    made: list[FlakyProxy] = []

    def make(upstream: str, plan=()) -> FlakyProxy:
        proxy = FlakyProxy(upstream, plan)
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.close()


class Recorder:
    """A requests.Session that notes every answer it got (method, path, status)."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.seen: list[tuple[str, str, int]] = []
        self.session.hooks["response"].append(self._note)

    def _note(self, response, *args, **kwargs):
        self.seen.append((response.request.method, response.request.path_url, response.status_code))


@pytest.fixture
def recorder():
    recorder = Recorder()
    yield recorder
    recorder.session.close()
