"""The migration that adds endpoint verification counts the endpoints already there as
verified, so switching WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION on holds nothing of
theirs."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("endpoints", "0007_translatable_names")
AFTER = ("endpoints", "0008_endpoint_verification")


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


def test_existing_endpoints_count_as_verified_and_are_not_held(settings):
    old = migrate(BEFORE)
    try:
        partner = old.get_model("endpoints", "Partner").objects.create(name="Old partner")
        endpoint = old.get_model("endpoints", "Endpoint").objects.create(
            partner=partner, name="old", url="https://hooks.example.com/in", signing_secret="s"
        )
        new = migrate(AFTER)
        migrated = new.get_model("endpoints", "Endpoint").objects.get(pk=endpoint.pk)
        assert migrated.verified_at is not None
        assert migrated.verification_sent_at is None and migrated.verification_challenge_hash == ""
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
    from endpoints.models import Endpoint

    settings.WEBHOOKHUB_REQUIRE_ENDPOINT_VERIFICATION = True
    assert not Endpoint.objects.get(pk=endpoint.pk).awaiting_verification
