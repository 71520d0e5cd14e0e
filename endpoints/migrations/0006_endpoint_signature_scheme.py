"""Asymmetric signatures (Standard Webhooks `v1a`): each endpoint gets a signature scheme
(HMAC by default, so nothing changes for anyone) and an ed25519 key pair — the secret
key encrypted, the public key in clear. Existing endpoints get their pair here, so a
partner can fetch its public key before switching the scheme. Reversible: going back
drops the columns.
"""

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from django.db import migrations, models

import endpoints.crypto


def _key_pair() -> tuple[str, str]:
    # Frozen here (not imported from deliveries.signing): same format, whsk_/whpk_ +
    # base64 of the raw 32 bytes.
    private = Ed25519PrivateKey.generate()
    secret = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return (
        "whsk_" + base64.b64encode(secret).decode("ascii"),
        "whpk_" + base64.b64encode(public).decode("ascii"),
    )


def give_key_pairs(apps, schema_editor):
    Endpoint = apps.get_model("endpoints", "Endpoint")
    rows = Endpoint.objects.filter(public_key="").only("pk").order_by("pk")
    for endpoint in rows.iterator(chunk_size=500):
        secret_key, public_key = _key_pair()
        # The historical model's field is the encrypted one: update() encrypts.
        Endpoint.objects.filter(pk=endpoint.pk).update(
            signing_key=secret_key, public_key=public_key
        )


class Migration(migrations.Migration):
    dependencies = [
        ("endpoints", "0005_support_registers_endpoints"),
    ]

    operations = [
        migrations.AddField(
            model_name="endpoint",
            name="previous_keys",
            field=endpoints.crypto.EncryptedJSONField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="endpoint",
            name="public_key",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="Verifies the v1a (ed25519) signatures. Not a secret: give it to "
                "the partner.",
                max_length=64,
                verbose_name="public key",
            ),
        ),
        migrations.AddField(
            model_name="endpoint",
            name="signature_scheme",
            field=models.CharField(
                choices=[
                    ("hmac", "HMAC-SHA256 (v1, whsec_ secret)"),
                    ("ed25519", "ed25519 (v1a, whpk_ public key)"),
                    ("both", "Both (v1 and v1a)"),
                ],
                default="hmac",
                help_text="How deliveries are signed: v1 (HMAC), v1a (ed25519) or both.",
                max_length=8,
                verbose_name="signature scheme",
            ),
        ),
        migrations.AddField(
            model_name="endpoint",
            name="signing_key",
            field=endpoints.crypto.EncryptedTextField(blank=True, editable=False),
        ),
        migrations.RunPython(give_key_pairs, migrations.RunPython.noop, elidable=False),
    ]
