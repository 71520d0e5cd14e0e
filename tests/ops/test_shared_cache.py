"""The migration creates the shared cache's table when the shared cache is a database."""

import pytest
from django.db import connection


@pytest.mark.django_db(transaction=True)
def test_migrations_create_the_shared_cache_table(settings):
    from importlib import import_module

    migration = import_module("deliveries.migrations.0005_shared_cache_table")
    settings.CACHES = {
        **settings.CACHES,
        "shared": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "webhookhub_cache_test",
        },
    }

    class Editor:  # what RunPython hands over: only the connection is used
        pass

    editor = Editor()
    editor.connection = connection
    migration.create_cache_table(None, editor)
    try:
        tables = connection.introspection.table_names()
        assert "webhookhub_cache_test" in tables and "shared" not in tables
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE webhookhub_cache_test")
