"""Schemathesis against the API's own OpenAPI schema, with both token roles.

One test per operation (so pytest-xdist spreads them): the schema's examples plus a
bounded number of generated requests (`WEBHOOKHUB_FUZZ_EXAMPLES`, default 12), valid and
invalid, some aimed at a real object of the calling partner, sent over HTTP to a live
server on the test database, each with a partner and a publisher token. Checks: no 5xx,
every status code documented, every body and header as the schema says. Outbound
webhooks (the `test` action) may only reach loopback: a fuzzed endpoint URL never makes
this suite call the outside world.
"""

import os

import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis import checks as st_checks
from schemathesis.specs.openapi import checks as openapi_checks

from deliveries import transport
from endpoints.models import ApiToken
from events.services import publish
from tests.api.conftest import make_token
from tests.factories import make_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fuzz]

EXAMPLES = int(os.environ.get("WEBHOOKHUB_FUZZ_EXAMPLES", "12"))
SEED = int(os.environ.get("WEBHOOKHUB_FUZZ_SEED", "20261123"))
CHECKS = [
    st_checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# Built at import (no database needed).
SCHEMA = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture
def fuzz_world(live_server, event_types, partner, receiver, monkeypatch, settings):
    """A partner with an endpoint (to the real receiver), an event and a delivery; tokens
    for both roles; generous rates so the fuzzer is not throttled."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "read": "100000/min",
            "write": "100000/min",
            "publish": "100000/min",
        },
    }
    real_resolve = transport.resolve_checked

    def loopback_only(host, port, *, allow_private):
        if host.strip("[]") not in LOOPBACK:
            raise transport.RefusedAddressError(f"{host!r}: tests send to loopback only")
        return real_resolve(host, port, allow_private=allow_private)

    monkeypatch.setattr(transport, "resolve_checked", loopback_only)
    endpoint = make_endpoint(partner, url=receiver.url_for("/hook"), timeout_seconds=2)
    event = publish("order.paid", {"order": {"id": 1, "total": 10}}, partner=partner)
    return {
        "url": live_server.url,
        "tokens": [
            make_token(ApiToken.Role.PARTNER, partner),
            make_token(ApiToken.Role.PUBLISHER),
        ],
        "ids": {
            "endpoints": endpoint.public_id,
            "events": event.public_id,
            "deliveries": event.deliveries.get().public_id,
            "event-types": "order.paid",
        },
    }


def strategy(operation, ids):
    """Examples, valid and invalid requests, and both aimed at a real object."""
    strategies = [
        *operation.get_strategies_from_examples(),
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    ]
    names = [p["name"] for p in operation.definition.raw.get("parameters", []) if p["in"] == "path"]
    names += [
        p["name"]
        for p in SCHEMA.raw_schema["paths"][operation.path].get("parameters", [])
        if p["in"] == "path"
    ]
    if names:
        real = {names[0]: ids[operation.path.split("/")[3]]}
        strategies += [
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real),
        ]
    return st.one_of(*strategies)


@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_operation_conforms_to_its_schema(operation, fuzz_world):
    session = requests.Session()

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy(operation, fuzz_world["ids"]))
    def run(case):
        for token in fuzz_world["tokens"]:
            case.call_and_validate(
                base_url=fuzz_world["url"],
                session=session,
                headers={"Authorization": f"Bearer {token}"},
                checks=CHECKS,
            )

    with session:
        run()
