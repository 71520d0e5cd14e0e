"""The warning stage of a failure streak, and the `webhookhub.endpoint.failing` event type."""

from django.db import migrations, models

FAILING = "webhookhub.endpoint.failing"
DESCRIPTION = (
    "An endpoint has been failing for 50 %, 75 % or 90 % of the auto-disable window; "
    "it will be switched off unless it succeeds again."
)


def forwards(apps, schema_editor):
    EventType = apps.get_model("events", "EventType")
    EventType.objects.get_or_create(name=FAILING, defaults={"description": DESCRIPTION})


def backwards(apps, schema_editor):
    pass  # events of this type may exist: the type stays


class Migration(migrations.Migration):
    dependencies = [
        ("deliveries", "0009_translatable_names"),
        ("events", "0002_translatable_names"),
    ]

    operations = [
        migrations.AddField(
            model_name="endpointhealth",
            name="failure_warning_stage",
            field=models.PositiveSmallIntegerField(
                default=0, verbose_name="failure warning stage"
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]
