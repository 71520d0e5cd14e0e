"""The event catalog and "Verifying webhooks" (docs/receiving-webhooks.md, with the
partner's own endpoint ids in the examples)."""

import json

from django.template.response import TemplateResponse

from events.models import EventType
from portal import queries
from portal.session import partner_required


@partner_required
def catalog_view(request):
    types = [
        {
            "type": t,
            "example": json.dumps(t.example, indent=2, ensure_ascii=False)
            if t.example is not None
            else "",
            "schema": json.dumps(t.schema, indent=2, ensure_ascii=False) if t.schema else "",
        }
        for t in EventType.objects.filter(archived_at__isnull=True).order_by("name")
    ]
    return TemplateResponse(request, "portal/catalog.html", {"types": types, "nav": "catalog"})


@partner_required
def verifying_view(request):
    endpoints = list(queries.partner_endpoints(request.partner).order_by("created_at"))
    example = endpoints[0].public_id if endpoints else "ep_…"
    return TemplateResponse(
        request,
        "portal/verifying.html",
        {"endpoints": endpoints, "example_endpoint": example, "nav": "verifying"},
    )
