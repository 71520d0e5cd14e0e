"""The table behind the "shared" cache when Redis is not configured."""

from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    # Creates the table of every configured database cache (the "shared" one); nothing
    # when the shared cache is Redis.
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("deliveries", "0004_admin_scale_indexes")]

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
