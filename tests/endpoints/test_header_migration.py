"""The migration that encrypts custom header values converts the rows already there,
and going back restores them."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("endpoints", "0002_endpoint_health")
AFTER = ("endpoints", "0003_encrypt_endpoint_headers")
HEADERS = {"X-Password": "hunter2-long-secret-value", "X-Tenant": "acme"}


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def headers_column(pk) -> str:
    """The stored column as text (psycopg hands jsonb back already parsed)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT headers FROM endpoints_endpoint WHERE id = %s", [pk])
        value = cursor.fetchone()[0]
    return value if isinstance(value, str) else json.dumps(value)


def test_existing_plaintext_headers_are_encrypted_and_decrypted_back():
    old = migrate(BEFORE)
    try:
        partner = old.get_model("endpoints", "Partner").objects.create(name="Old partner")
        endpoint = old.get_model("endpoints", "Endpoint").objects.create(
            partner=partner,
            name="old",
            url="https://hooks.example.com/in",
            signing_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            headers=HEADERS,
        )
        bare = old.get_model("endpoints", "Endpoint").objects.create(
            partner=partner, name="bare", url="https://hooks.example.com/in", signing_secret="s"
        )
        assert "hunter2" in headers_column(endpoint.pk), "plaintext before"

        new = migrate(AFTER)
        column = headers_column(endpoint.pk)
        assert column.startswith("fernet:") and "hunter2" not in column
        assert "X-Password" not in column and "acme" not in column
        Endpoint = new.get_model("endpoints", "Endpoint")
        assert Endpoint.objects.get(pk=endpoint.pk).headers == HEADERS
        assert Endpoint.objects.get(pk=bare.pk).headers == {}

        migrate(BEFORE)
        assert json.loads(headers_column(endpoint.pk)) == HEADERS, "reversible"
    finally:
        # Every app back to its latest migration (later ones depend on AFTER).
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    from endpoints.models import Endpoint

    assert Endpoint.objects.get(pk=endpoint.pk).headers == HEADERS
