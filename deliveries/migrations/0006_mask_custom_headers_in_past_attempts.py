"""Mask custom header values in attempts recorded before they were treated as secrets.

Until endpoints' custom headers became secrets (endpoints 0003), an attempt's stored
request headers masked a value only when its name looked like a credential, so an
`X-Password` sent before was kept in clear. Every request header webhookhub did not set
itself is a custom header (or Authorization, already masked): mask them all, with the
same rule the engine now applies. One-way by nature.
"""

from django.db import migrations

# The rule as it was written (endpoints.header_rules.mask_value), copied so that this
# migration keeps meaning the same whatever that module becomes.
MASK = "••••"


def mask_value(value: str) -> str:
    return MASK if len(value) < 12 else MASK + value[-4:]


# What webhookhub itself sends, in clear by design (deliveries.transport.compose_headers).
OURS = frozenset({"content-type", "user-agent", "webhook-id", "webhook-timestamp"})
BATCH = 2000


def mask_past_attempts(apps, schema_editor):
    DeliveryAttempt = apps.get_model("deliveries", "DeliveryAttempt")
    last = 0
    while True:
        rows = list(
            DeliveryAttempt.objects.filter(pk__gt=last)
            .order_by("pk")
            .values_list("pk", "request_headers")[:BATCH]
        )
        if not rows:
            return
        last = rows[-1][0]
        changed = []
        for pk, headers in rows:
            if not isinstance(headers, dict):
                continue
            masked = {
                name: value
                if name.lower() in OURS or not isinstance(value, str) or value.startswith(MASK)
                else mask_value(value)
                for name, value in headers.items()
            }
            if masked != headers:
                changed.append(DeliveryAttempt(pk=pk, request_headers=masked))
        DeliveryAttempt.objects.bulk_update(changed, ["request_headers"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0005_shared_cache_table"),
        ("endpoints", "0003_encrypt_endpoint_headers"),
    ]

    operations = [migrations.RunPython(mask_past_attempts, migrations.RunPython.noop)]
