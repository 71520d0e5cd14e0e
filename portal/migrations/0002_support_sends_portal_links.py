"""Support may create portal sign-in links (copy or e-mail them from the partner page)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

PERMISSION = ("portal", "send_portal_link")


def forwards(apps, schema_editor):
    # Permissions are normally created after all migrations; the group needs this one now.
    app_config = apps.get_app_config("portal")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Support")
    group.permissions.add(
        Permission.objects.get(content_type__app_label=PERMISSION[0], codename=PERMISSION[1])
    )


def backwards(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name="Support"):
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label=PERMISSION[0], codename=PERMISSION[1]
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("deliveries", "0002_support_group_and_system_event_types"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
