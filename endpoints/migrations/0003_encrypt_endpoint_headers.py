"""Custom header values are credentials: store them encrypted like the bearer token.

A JSON column cannot become an encrypted text column in place (PostgreSQL would cast
jsonb to text and keep it readable), so: add an encrypted column, copy every row into
it encrypted, drop the plaintext column, take its name. Reversible: going back copies
the decrypted values into a JSON column again.
"""

from django.db import migrations, models

import endpoints.crypto


def encrypt_headers(apps, schema_editor):
    Endpoint = apps.get_model("endpoints", "Endpoint")
    rows = Endpoint.objects.only("pk", "headers").order_by("pk")
    for endpoint in rows.iterator(chunk_size=500):
        # The historical model's field is the encrypted one: update() encrypts.
        Endpoint.objects.filter(pk=endpoint.pk).update(headers_encrypted=endpoint.headers or {})


def decrypt_headers(apps, schema_editor):
    Endpoint = apps.get_model("endpoints", "Endpoint")
    rows = Endpoint.objects.only("pk", "headers_encrypted").order_by("pk")
    for endpoint in rows.iterator(chunk_size=500):
        Endpoint.objects.filter(pk=endpoint.pk).update(headers=endpoint.headers_encrypted or {})


class Migration(migrations.Migration):
    dependencies = [
        ("endpoints", "0002_endpoint_health"),
    ]

    operations = [
        migrations.AddField(
            model_name="endpoint",
            name="headers_encrypted",
            field=endpoints.crypto.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.RunPython(encrypt_headers, decrypt_headers, elidable=False),
        migrations.RemoveField(model_name="endpoint", name="headers"),
        migrations.RenameField(
            model_name="endpoint", old_name="headers_encrypted", new_name="headers"
        ),
        migrations.AlterField(
            model_name="endpoint",
            name="headers",
            field=endpoints.crypto.EncryptedJSONField(
                blank=True,
                default=dict,
                help_text="Extra request headers. Their values are stored encrypted and shown "
                "masked.",
            ),
        ),
    ]
