"""Schemathesis against the API's own OpenAPI schema, once per operation and token role.

One test per operation and role (partner, publisher), so pytest-xdist spreads them: the
schema's examples plus a bounded number of generated requests (`WEBHOOKHUB_FUZZ_EXAMPLES`,
default 10 per operation and role), valid and invalid, some aimed at a real object of
the calling partner, sent over HTTP to a live server on the test database.

Checks: all of Schemathesis's (`call_and_validate` without `checks=`, the Python API's
`--checks all`): no 5xx; status code, content type, headers and body as the schema says;
schema-violating requests refused (`negative_data_rejection`); schema-valid requests
accepted (`positive_data_acceptance`, see below); a request without or with a wrong token
refused (`ignored_auth`). `missing_required_header` and `unsupported_method` act only on
the coverage phase, `use_after_free`, `ensure_resource_availability` and
`object_level_authorization` only in stateful runs: here they have nothing to check.
`max_response_time` is off (it needs a limit; timing is not what this test is about).

One check is replaced, not excluded: `positive_data_acceptance` runs through
`positive_data_acceptance()` below, which lets through only the 400s whose every field is
in DOCUMENTED_REFUSALS (rules that need the database or the network, stated in the
schema's descriptions). Outbound webhooks (the `test` action) may only reach loopback: a
fuzzed endpoint URL never makes this suite call the outside world.
"""

import os

import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from deliveries import transport
from endpoints.models import ApiToken
from events.services import publish
from tests.api.conftest import make_token
from tests.factories import make_endpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fuzz]

EXAMPLES = int(os.environ.get("WEBHOOKHUB_FUZZ_EXAMPLES", "10"))
SEED = int(os.environ.get("WEBHOOKHUB_FUZZ_SEED", "20261123"))
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
ROLES = {"partner": ApiToken.Role.PARTNER, "publisher": ApiToken.Role.PUBLISHER}

# Valid by the schema, refused by design with a 400 naming one of these fields: rules
# that depend on the database or the network, which a JSON Schema cannot state. Each is
# described in the schema (the field's description or the operation's), so a client
# can know it; any other 400 (or 413, 415 …) to a schema-valid request fails the test.
# Keys: operation label, or "*" for every operation.
ENDPOINT_RULES = {"url", "event_types", "filter", "headers", "auth_token", "retry_policy"}
DOCUMENTED_REFUSALS = {
    # An opaque cursor is only valid as it came in `next`/`previous`.
    "*": {"cursor"},
    # Event type names must be in the catalog (and not archived); the partner must exist;
    # the body's idempotency key must agree with the Idempotency-Key header. Times are
    # years 1 to 9998 once in UTC (RFC 3339 allows 9999-12-31T23:00-12:00).
    "POST /api/v1/events/": {"type", "partner", "idempotency_key", "occurred_at"},
    "POST /api/v1/events/batch/": {"type", "partner", "idempotency_key", "occurred_at"},
    "GET /api/v1/events/": {"created_after", "created_before"},
    # Replay to one endpoint: it must be the token's own.
    "POST /api/v1/events/{id}/replay/": {"endpoint"},
    # URL safety (SPEC §5): private, loopback and metadata addresses are refused; event
    # types must exist; filters have limits the schema states in words (depth, number of
    # conditions, RE2 syntax, value type per operator); header names may not override
    # the protocol's, and header values and the auth token are RFC 9110 field values
    # (visible ASCII, spaces and tabs); a retry policy's max_delay is at least its
    # base_delay.
    "POST /api/v1/endpoints/": ENDPOINT_RULES,
    "PATCH /api/v1/endpoints/{id}/": ENDPOINT_RULES,
    # Recovery looks back at most as far as deliveries are kept, and not into the future.
    "POST /api/v1/endpoints/{id}/recover/": {"since"},
    # Names are unique and `webhookhub.` is reserved. A schema must be a valid Draft
    # 2020-12 JSON Schema with references only inside it, the example must validate
    # against it, and warn/enforce need a schema (each field's description says so).
    "POST /api/v1/event-types/": {"name", "schema", "example", "schema_mode"},
    # A pasted challenge must be the one the endpoint was last sent (its description
    # says so).
    "POST /api/v1/endpoints/{id}/verify/": {"challenge"},
    # A portal link is for an existing, active partner (its description says so).
    "POST /api/v1/portal-links/": {"partner"},
}

# Built at import (no database needed). Strings without NUL characters: PostgreSQL cannot
# store them, and every text field says so (a documented refusal, tested in
# test_publish_refusals.py); security parameters are not generated, the test sends the
# role's real token.
SCHEMA = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
SCHEMA.config.generation.update(allow_x00=False, with_security_parameters=False)
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


def documented_refusal(case, response) -> bool:
    """A 400 to a schema-valid request whose every named field is a documented refusal."""
    if response.status_code != 400:
        return False
    try:
        errors = response.json()["errors"]
    except (ValueError, KeyError, TypeError):
        return False
    allowed = DOCUMENTED_REFUSALS["*"] | DOCUMENTED_REFUSALS.get(case.operation.label, set())
    fields = {name.split(".", 1)[-1] if name[:1].isdigit() else name for name in errors}
    fields = {name.split(".", 1)[0] for name in fields}
    return bool(fields) and fields <= allowed


def positive_data_acceptance(ctx, response, case):
    """Schemathesis's check, less the refusals documented above."""
    if documented_refusal(case, response):
        return None
    return openapi_checks.positive_data_acceptance(ctx, response, case)


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
        "tokens": {
            "partner": make_token(ROLES["partner"], partner),
            "publisher": make_token(ROLES["publisher"]),
        },
        "ids": {
            "endpoints": endpoint.public_id,
            "events": event.public_id,
            "deliveries": event.deliveries.get().public_id,
            "event-types": "order.paid",
        },
    }


def strategy(operation, ids, headers):
    """Examples, valid and invalid requests, and both aimed at a real object."""
    strategies = [
        *operation.get_strategies_from_examples(headers=headers),
        operation.as_strategy(GenerationMode.POSITIVE, headers=headers),
        operation.as_strategy(GenerationMode.NEGATIVE, headers=headers),
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
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real, headers=headers),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=real, headers=headers),
        ]
    return st.one_of(*strategies)


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("operation", OPERATIONS, ids=[op.label for op in OPERATIONS])
def test_operation_conforms_to_its_schema(operation, role, fuzz_world):
    session = requests.Session()
    headers = {"Authorization": f"Bearer {fuzz_world['tokens'][role]}"}

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy(operation, fuzz_world["ids"], headers))
    def run(case):
        case.call_and_validate(
            base_url=fuzz_world["url"],
            session=session,
            headers=headers,
            excluded_checks=[openapi_checks.positive_data_acceptance],
            additional_checks=[positive_data_acceptance],
        )

    with session:
        run()
