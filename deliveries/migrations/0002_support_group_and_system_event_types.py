"""The "Support" group with the support permissions, and webhookhub's own event types."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

SUPPORT_PERMISSIONS = [
    # Read everything support needs to answer "what happened to this webhook?"
    ("endpoints", "view_partner"),
    ("endpoints", "view_endpoint"),
    ("endpoints", "view_subscription"),
    ("events", "view_eventtype"),
    ("events", "view_event"),
    ("deliveries", "view_delivery"),
    ("deliveries", "view_deliveryattempt"),
    # The support actions, each its own permission.
    ("endpoints", "toggle_endpoint"),
    ("endpoints", "rotate_credentials"),
    ("endpoints", "send_test_event"),
    ("deliveries", "replay_delivery"),
]

SYSTEM_EVENT_TYPES = {
    "webhookhub.test": "A test event sent on demand to check an endpoint.",
    "webhookhub.endpoint.disabled": "An endpoint was switched off (by hand, after sustained failure, or after 410 Gone).",
    "webhookhub.endpoint.recovered": "An endpoint that was failing succeeded again.",
    "webhookhub.delivery.dead": "A delivery used all its attempts without success.",
}


def forwards(apps, schema_editor):
    # Permissions are normally created after all migrations; the group needs them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Support")
    for app_label, codename in SUPPORT_PERMISSIONS:
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    EventType = apps.get_model("events", "EventType")
    for name, description in SYSTEM_EVENT_TYPES.items():
        EventType.objects.get_or_create(name=name, defaults={"description": description})


def backwards(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Support").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("endpoints", "0001_initial"),
        ("events", "0001_initial"),
        ("deliveries", "0001_initial"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
