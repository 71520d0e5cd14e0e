"""Endpoint verification fields. The endpoints that exist now count as verified (at
migration time): switching WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION on later holds
nothing of theirs; only new endpoints and URL changes are challenged."""

from django.db import migrations, models
from django.utils import timezone


def existing_count_as_verified(apps, schema_editor):
    Endpoint = apps.get_model("endpoints", "Endpoint")
    Endpoint.objects.filter(verified_at__isnull=True).update(verified_at=timezone.now())


class Migration(migrations.Migration):

    dependencies = [
        ('endpoints', '0007_translatable_names'),
    ]

    operations = [
        migrations.AddField(
            model_name='endpoint',
            name='verification_challenge_hash',
            field=models.CharField(blank=True, editable=False, max_length=64, verbose_name='verification challenge hash'),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='verification_sent_at',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='verification sent at'),
        ),
        migrations.AddField(
            model_name='endpoint',
            name='verified_at',
            field=models.DateTimeField(blank=True, editable=False, null=True, verbose_name='verified at'),
        ),
        migrations.RunPython(existing_count_as_verified, migrations.RunPython.noop),
    ]
