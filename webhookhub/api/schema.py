"""The OpenAPI schema (drf-spectacular): every error each operation can answer, the
bearer scheme, and the shared components (filter language, retry policy, envelope).
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import force_instance
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from deliveries.policy import MAX_ATTEMPTS_LIMIT, STRATEGIES
from events import filters as filter_language
from webhookhub.api.permissions import ANY_ROLE, roles_for


class ErrorSerializer(serializers.Serializer):
    """Every 4xx answer."""

    detail = serializers.CharField(help_text="One sentence naming the problem.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Messages per field (dotted for nested fields; empty if not about a field).",
    )

    class Meta:
        ref_name = "Error"


ERROR_DESCRIPTIONS = {
    400: "Invalid input: `errors` names each bad field.",
    401: "No token, or an invalid, revoked or expired one.",
    403: "The token's role may not do this.",
    404: "No such object for this token (another partner's objects are not found either).",
    413: "The request body is larger than the limit (`WEBHOOKHUB_MAX_PAYLOAD_BYTES`; a batch: "
    "`WEBHOOKHUB_API_MAX_BATCH_BYTES`), refused on its Content-Length before it is read; or "
    "the event's envelope is.",
    429: "Too many requests for this token; retry after `Retry-After` seconds.",
}
WRITE_METHODS = ("POST", "PUT", "PATCH")


class AutoSchema(SpectacularAutoSchema):
    """Adds the error responses an operation can give, all with the `Error` body, and
    what drf-spectacular leaves out: the item limits of list request bodies, and that an
    empty filter value is no filter."""

    def _get_request_for_media_type(self, serializer, direction="request"):
        serializer = force_instance(serializer)
        schema, required = super()._get_request_for_media_type(serializer, direction)
        if isinstance(serializer, serializers.ListSerializer) and schema.get("type") == "array":
            if not serializer.allow_empty:
                schema["minItems"] = max(1, serializer.min_length or 0)
            elif serializer.min_length is not None:
                schema["minItems"] = serializer.min_length
            if serializer.max_length is not None:
                schema["maxItems"] = serializer.max_length
        return schema, required

    def _get_filter_parameters(self):
        # django-filter treats `?status=` as no filter at all (every filter skips empty
        # values): OpenAPI says so with allowEmptyValue. A filter's max_length is
        # enforced (a longer value is a 400), so it is published too.
        parameters = super()._get_filter_parameters()
        filterset = getattr(self.view, "filterset_class", None)
        filters = filterset.base_filters if filterset is not None else {}
        for parameter in parameters:
            if parameter.get("in") != "query":
                continue
            parameter["allowEmptyValue"] = True
            max_length = getattr(filters.get(parameter["name"]), "extra", {}).get("max_length")
            if max_length and parameter.get("schema", {}).get("type") == "string":
                parameter["schema"]["maxLength"] = max_length
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        codes = {401, 429}
        action = getattr(self.view, "action", None)
        if roles_for(self.view, action) != ANY_ROLE:
            codes.add(403)
        if "{" in self.path:
            codes.add(404)
        if self.method in WRITE_METHODS:
            codes |= {400, 413}
        if self.method == "GET" and self._is_list_view():
            codes.add(400)  # bad filter value or cursor
        for code in sorted(codes):
            if str(code) in responses:
                continue
            response = self._get_response_for_code(
                OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code]),
                str(code),
                direction=direction,
            )
            if code == 429:
                response["headers"] = {
                    "Retry-After": {
                        "schema": {"type": "integer", "minimum": 1},
                        "description": "Seconds until the token's budget refills.",
                    }
                }
            responses[str(code)] = response
        return responses


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "webhookhub.api.authentication.ApiTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`whk_…`): a partner token or a publisher token.",
        }


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable_ref(name: str) -> dict:
    return {"allOf": [ref(name)], "nullable": True}


F = filter_language
COMPONENTS = {
    "Filter": {
        "description": (
            "A payload filter over the envelope (`data.order.amount`, `type`, …). "
            "`{}` matches every event; otherwise a condition or an `and`/`or` of filters. "
            f"At most {F.MAX_DEPTH} levels, {F.MAX_CONDITIONS} conditions and "
            f"{F.MAX_FILTER_BYTES} bytes of JSON. When the path is absent every condition is "
            "false except `ne`, `nin` and `exists: false`."
        ),
        "oneOf": [
            ref("FilterCondition"),
            ref("FilterAll"),
            ref("FilterAny"),
            {"type": "object", "maxProperties": 0, "description": "Matches every event."},
        ],
    },
    "FilterCondition": {
        "type": "object",
        "required": ["path", "op", "value"],
        "additionalProperties": False,
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "maxLength": F.MAX_PATH_LENGTH,
                "pattern": rf"^[^.]+(\.[^.]+){{0,{F.MAX_PATH_SEGMENTS - 1}}}$",
                "description": (
                    "Dotted path into the envelope; digit segments index lists. At most "
                    f"{F.MAX_PATH_SEGMENTS} non-empty segments."
                ),
                "example": "data.order.amount",
            },
            "op": {"type": "string", "enum": sorted(F.OPERATORS)},
            "value": {
                "description": (
                    "Compared value: a list for `in`/`nin` (at most "
                    f"{F.MAX_LIST_ITEMS} items), an RE2 pattern for `regex` (at most "
                    f"{F.MAX_REGEX_LENGTH} characters), a boolean for `exists`."
                )
            },
        },
    },
    "FilterAll": {
        "type": "object",
        "required": ["and"],
        "additionalProperties": False,
        "properties": {"and": {"type": "array", "items": ref("Filter"), "minItems": 1}},
    },
    "FilterAny": {
        "type": "object",
        "required": ["or"],
        "additionalProperties": False,
        "properties": {"or": {"type": "array", "items": ref("Filter"), "minItems": 1}},
    },
    "RetryPolicy": {
        "type": "object",
        "additionalProperties": False,
        "description": (
            "When a failed delivery is tried again. Absent keys take the defaults "
            "(schedule 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h; ±20 % jitter). After a "
            "timeout or a 429 the next try waits at least 60 s; `Retry-After` is honoured "
            "up to `max_delay`."
        ),
        "properties": {
            "strategy": {"type": "string", "enum": list(STRATEGIES)},
            "schedule": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_ATTEMPTS_LIMIT,
                "items": {"type": "number", "minimum": 1, "maximum": 604800},
                "description": "Seconds to wait before each retry (`schedule` strategy).",
            },
            "max_attempts": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ATTEMPTS_LIMIT,
                "description": "Attempts in total, the first one included.",
            },
            "base_delay": {"type": "number", "minimum": 1, "maximum": 86400},
            "max_delay": {
                "type": "number",
                "minimum": 1,
                "maximum": 604800,
                "description": "At least `base_delay`.",
            },
            "jitter": {"type": "number", "minimum": 0, "maximum": 0.5},
        },
    },
    "WebhookEnvelope": {
        "type": "object",
        "description": (
            "The body POSTed to an endpoint, identical bytes on every attempt, signed per "
            "Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`)."
        ),
        "required": ["id", "type", "timestamp", "data"],
        "properties": {
            "id": {"type": "string", "example": "evt_01JD0000000000000000000000"},
            "type": {"type": "string", "example": "order.paid"},
            "timestamp": {"type": "string", "format": "date-time"},
            "data": {"type": "object", "additionalProperties": True},
        },
    },
}


def add_components(result, generator, request, public):
    """Postprocessing hook: the hand-written components above, and request bodies
    marked closed (`additionalProperties: false`), since unknown fields are refused."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in schemas.items():
        if name.endswith("Request") and schema.get("type") == "object":
            schema.setdefault("additionalProperties", False)
    schemas.update(COMPONENTS)
    return result
