"""Support reads the audit trail and may probe and close circuits (its own permission,
apart from switching endpoints off and on)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SUPPORT_PERMISSIONS = [
    ("audit", "view_auditentry"),
    ("deliveries", "manage_circuit"),
]


def _permissions(apps):
    # Permissions are normally created after all migrations; the group needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Permission = apps.get_model("auth", "Permission")
    return [
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in SUPPORT_PERMISSIONS
    ]


def forwards(apps, schema_editor):
    group, _ = apps.get_model("auth", "Group").objects.get_or_create(name="Support")
    group.permissions.add(*_permissions(apps))


def backwards(apps, schema_editor):
    for group in apps.get_model("auth", "Group").objects.filter(name="Support"):
        group.permissions.remove(*_permissions(apps))


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("audit", "0001_initial"),
        ("deliveries", "0008_circuit_permission"),
        ("endpoints", "0005_support_registers_endpoints"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
