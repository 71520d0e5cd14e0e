"""Delivery health gets a row of its own (deliveries.EndpointHealth), out of the
endpoint's configuration row, and drainers get their per-endpoint index.

The circuit, failure-streak and rate-bucket values are copied from each endpoint;
endpoints 0004 then drops them from the endpoint row.
"""

import django.db.models.deletion
from django.db import migrations, models


def copy_health(apps, schema_editor):
    Endpoint = apps.get_model("endpoints", "Endpoint")
    EndpointHealth = apps.get_model("deliveries", "EndpointHealth")
    fields = (
        "circuit_state", "consecutive_failures", "failing_since", "circuit_opened_at",
        "circuit_open_count", "circuit_retry_at", "failure_notice_at", "rate_tokens",
        "rate_checked_at",
    )  # fmt: skip
    rows = Endpoint.objects.values("pk", *fields).iterator(chunk_size=2000)
    batch = []
    for row in rows:
        batch.append(EndpointHealth(endpoint_id=row.pop("pk"), **row))
        if len(batch) >= 2000:
            EndpointHealth.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    EndpointHealth.objects.bulk_create(batch, ignore_conflicts=True)


def copy_back(apps, schema_editor):
    Endpoint = apps.get_model("endpoints", "Endpoint")
    EndpointHealth = apps.get_model("deliveries", "EndpointHealth")
    for health in EndpointHealth.objects.iterator():
        Endpoint.objects.filter(pk=health.endpoint_id).update(
            circuit_state=health.circuit_state,
            consecutive_failures=health.consecutive_failures,
            failing_since=health.failing_since,
            circuit_opened_at=health.circuit_opened_at,
            circuit_open_count=health.circuit_open_count,
            circuit_retry_at=health.circuit_retry_at,
            failure_notice_at=health.failure_notice_at,
            rate_tokens=health.rate_tokens,
            rate_checked_at=health.rate_checked_at,
        )


class Migration(migrations.Migration):

    dependencies = [
        ("deliveries", "0006_mask_custom_headers_in_past_attempts"),
        ("endpoints", "0003_encrypt_endpoint_headers"),
    ]

    operations = [
        migrations.CreateModel(
            name="EndpointHealth",
            fields=[
                (
                    "endpoint",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="health",
                        serialize=False,
                        to="endpoints.endpoint",
                    ),
                ),
                (
                    "circuit_state",
                    models.CharField(
                        choices=[
                            ("closed", "Closed (delivering)"),
                            ("open", "Open (waiting to probe)"),
                            ("half_open", "Half-open (probe in flight)"),
                        ],
                        default="closed",
                        max_length=16,
                    ),
                ),
                ("consecutive_failures", models.PositiveIntegerField(default=0)),
                ("failing_since", models.DateTimeField(blank=True, null=True)),
                ("circuit_opened_at", models.DateTimeField(blank=True, null=True)),
                ("circuit_open_count", models.PositiveIntegerField(default=0)),
                ("circuit_retry_at", models.DateTimeField(blank=True, null=True)),
                ("failure_notice_at", models.DateTimeField(blank=True, null=True)),
                ("rate_tokens", models.FloatField(blank=True, null=True)),
                ("rate_checked_at", models.DateTimeField(blank=True, null=True)),
                ("drain_holder", models.CharField(blank=True, max_length=64)),
                ("drain_until", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "endpoint health",
                "verbose_name_plural": "endpoint health",
                "indexes": [
                    models.Index(
                        condition=models.Q(("failing_since__isnull", False)),
                        fields=["failing_since"],
                        name="health_failing",
                    )
                ],
            },
        ),
        migrations.AddIndex(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("status__in", ["pending", "retrying"])),
                fields=["endpoint", "next_attempt_at", "id"],
                name="delivery_endpoint_due",
            ),
        ),
        migrations.RunPython(copy_health, copy_back, elidable=False),
    ]
