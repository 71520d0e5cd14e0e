"""The `webhookhub.endpoint.verification` event type (endpoint verification challenges)."""

from django.db import migrations

VERIFICATION = "webhookhub.endpoint.verification"
DESCRIPTION = (
    "A verification challenge sent to a new endpoint or a changed URL; the endpoint is "
    'verified when it answers 2xx with {"challenge": "<value>"}.'
)


def forwards(apps, schema_editor):
    EventType = apps.get_model("events", "EventType")
    EventType.objects.get_or_create(name=VERIFICATION, defaults={"description": DESCRIPTION})


def backwards(apps, schema_editor):
    pass  # events of this type may exist: the type stays


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0010_failure_warning_stage"),
        ("events", "0002_translatable_names"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
