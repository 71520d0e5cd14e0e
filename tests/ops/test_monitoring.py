"""docs/monitoring: the alert rules and the Grafana dashboard use only metrics we export."""

import json
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import ROOT

MONITORING = ROOT / "docs" / "monitoring"
METRIC = re.compile(r"\b((?:webhookhub|django)_[a-zA-Z0-9_]+)\b")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum", ""),
    "gauge": ("",),
}
DURATION = re.compile(r"^\d+[smhdwy]$")


def exported_names(client) -> set[str]:
    """Every series name /metrics exposes (for counters `_total`, histograms `_bucket`…)."""
    response = client.get("/metrics")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(s.name for s in family.samples)
    return names


def alert_rules() -> list[dict]:
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    document = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    return [
        target["expr"]
        for panel in document["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]


def test_alert_rules_are_well_formed():
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    assert set(document) == {"groups"}
    for group in document["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
            assert rule["expr"].strip()
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
            assert "for" not in rule or DURATION.match(rule["for"])
    names = {rule["alert"] for rule in alert_rules()}
    for needed in ("Backlog", "DeadLetters", "SuccessRate", "Heartbeat", "AutoDisabled"):
        assert any(needed in name for name in names), needed


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_alert_rules():
    result = subprocess.run(
        ["promtool", "check", "rules", str(MONITORING / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_every_metric_the_alerts_and_dashboard_use_is_exported(client):
    exported = exported_names(client)
    used = {
        name
        for expr in [rule["expr"] for rule in alert_rules()] + dashboard_exprs()
        for name in METRIC.findall(expr)
    }
    assert used, "no metric found in docs/monitoring"
    assert sorted(used - exported) == []


def test_dashboard_shows_every_delivery_metric_of_the_spec():
    text = "\n".join(dashboard_exprs())
    for name in (
        "webhookhub_events_published_total",
        "webhookhub_delivery_attempts_total",
        "webhookhub_delivery_attempt_duration_seconds_bucket",
        "webhookhub_deliveries",
        "webhookhub_deliveries_completed_total",
        "webhookhub_queue_depth",
        "webhookhub_deliveries_due",
        "webhookhub_deliveries_due_oldest_age_seconds",
        "webhookhub_dead_letters",
        "webhookhub_endpoints_circuit_open",
        "webhookhub_endpoints_disabled",
        "webhookhub_dispatcher_heartbeat_age_seconds",
        "django_http_responses_total_by_status_total",
        "django_db_execute_total",
    ):
        assert re.search(rf"\b{name}\b", text), name
    document = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert document["__inputs"][0]["pluginId"] == "prometheus"
    ids = [panel["id"] for panel in document["panels"]]
    assert len(ids) == len(set(ids))
