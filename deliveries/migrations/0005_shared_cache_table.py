"""The table behind the "shared" cache when Redis is not configured."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", "shared", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("deliveries", "0004_admin_scale_indexes")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
