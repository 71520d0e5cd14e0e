import pytest
from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.management import create_contenttypes
from django.contrib.contenttypes.models import ContentType


def ensure_permissions():
    """Transactional tests flush every table and rebuild content types and permissions
    with a stale ContentType cache; rebuild them properly, as `migrate` would."""
    ContentType.objects.clear_cache()
    for config in apps.get_app_configs():
        create_contenttypes(config, verbosity=0)
        create_permissions(config, verbosity=0)


def support_group() -> Group:
    """The "Support" group with what the migrations give it (transactional tests flush
    the rows the migrations wrote)."""
    from importlib import import_module

    granted = [
        *import_module(
            "deliveries.migrations.0002_support_group_and_system_event_types"
        ).SUPPORT_PERMISSIONS,
        *import_module(
            "endpoints.migrations.0005_support_registers_endpoints"
        ).SUPPORT_ENDPOINT_PERMISSIONS,
        *import_module("audit.migrations.0002_support_reads_the_trail").SUPPORT_PERMISSIONS,
        import_module("portal.migrations.0002_support_sends_portal_links").PERMISSION,
    ]
    ensure_permissions()
    group, _ = Group.objects.get_or_create(name="Support")
    group.permissions.set(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in granted
    )
    return group


def support_member(username: str = "sam", password: str = "pw-for-tests") -> User:
    """A staff member in "Support"."""
    user = User.objects.create_user(username, password=password, is_staff=True)
    user.groups.add(support_group())
    return user


@pytest.fixture
def support_user(transactional_db):
    """A staff member in the "Support" group, as the migrations define it."""
    return support_member()


@pytest.fixture
def viewer_user(transactional_db):
    """Staff who may look at everything but run no support action."""
    ensure_permissions()
    user = User.objects.create_user("vic", password="pw-for-tests", is_staff=True)
    for codename in (
        "view_endpoint",
        "view_partner",
        "view_delivery",
        "view_deliveryattempt",
        "view_event",
        "view_eventtype",
        "view_subscription",
    ):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user
