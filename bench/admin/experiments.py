#!/usr/bin/env python
"""Measure the suggested *code* changes without editing the project: each one is applied
as a runtime patch in this process only, and the affected pages are timed before and
after it, back to back (same machine load, same database state).

    .venv/bin/python bench/admin/experiments.py [--runs 5] [--label TEXT]

Patches (what the change in the project would be):

* events-search: EventAdmin.get_search_results looks an `evt_…` term up with
  `public_id = term` (the unique index) instead of Django's `=public_id` search, which
  is `UPPER(public_id) = UPPER(term)` OR-ed with icontains on the type and partner names.
* deliveries-search: DeliveryAdmin.get_search_results: `dlv_…` → `public_id = term`,
  `evt_…` → `event__public_id = term`.
* dashboard: window_stats reads counts and both percentiles from one
  `SELECT duration_ms, succeeded, COUNT(*) … GROUP BY 1, 2` query (exact: same index
  arithmetic as _percentile), and hourly_outcomes adds `.order_by()`
  (DeliveryAttempt.Meta.ordering = ["delivery", "number"] otherwise leaves an INNER JOIN
  to deliveries_delivery in the GROUP BY query) and counts started_at (NOT NULL, in
  the covering index) instead of id, so that both can be index-only scans.

Which indexes exist is up to you (candidate_indexes.sql / drop_candidate_indexes.sql);
the script prints them. Writes bench/admin/results/experiments-<UTC timestamp>.json.
"""

import argparse
import json
import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchenv


def patch_events_search():
    from events.admin import EventAdmin

    original = EventAdmin.get_search_results

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term.startswith("evt_"):
            return queryset.filter(public_id=term), False
        return original(self, request, queryset, search_term)

    EventAdmin.get_search_results = get_search_results
    return lambda: setattr(EventAdmin, "get_search_results", original)


def patch_deliveries_search():
    from deliveries.admin import DeliveryAdmin

    original = DeliveryAdmin.get_search_results

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term.startswith("dlv_"):
            return queryset.filter(public_id=term), False
        if term.startswith("evt_"):
            return queryset.filter(event__public_id=term), False
        return original(self, request, queryset, search_term)

    DeliveryAdmin.get_search_results = get_search_results
    return lambda: setattr(DeliveryAdmin, "get_search_results", original)


def patch_dashboard():
    from django.db.models import Count, Q
    from django.db.models.functions import TruncHour

    from deliveries import dashboard
    from deliveries.models import DeliveryAttempt
    from events.models import Event

    original = dashboard.window_stats, dashboard.hourly_outcomes

    def window_stats(label, since, *, dead):
        rows = sorted(
            DeliveryAttempt.objects.filter(started_at__gte=since)
            .order_by()
            .values_list("duration_ms", "succeeded")
            .annotate(n=Count("*"))  # COUNT(*): index-only with the covering index
        )
        ok = sum(n for _, succeeded, n in rows if succeeded)
        total = sum(n for _, _, n in rows)

        def percentile(q):
            if not total:
                return None
            rank = max(1, math.ceil(q * total))  # as dashboard.percentile (percentile_disc)
            seen = 0
            for duration, _, n in rows:
                seen += n
                if seen >= rank:
                    return duration
            return None

        return dashboard.WindowStats(
            label=label,
            since=since,
            events=Event.objects.filter(created_at__gte=since).count(),
            attempts_ok=ok,
            attempts_failed=total - ok,
            dead=dead,
            p50_ms=percentile(0.50),
            p95_ms=percentile(0.95),
        )

    def hourly_outcomes(now):
        start = (now - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
        rows = (
            DeliveryAttempt.objects.filter(started_at__gte=start)
            .order_by()
            .annotate(hour=TruncHour("started_at"))
            .values("hour")
            .annotate(
                ok=Count("started_at", filter=Q(succeeded=True)),
                failed=Count("started_at", filter=Q(succeeded=False)),
            )
        )
        by_hour = {row["hour"]: row for row in rows}
        return [
            {
                "hour": (hour := start + timedelta(hours=i)),
                "ok": by_hour.get(hour, {}).get("ok", 0),
                "failed": by_hour.get(hour, {}).get("failed", 0),
            }
            for i in range(24)
        ]

    dashboard.window_stats, dashboard.hourly_outcomes = window_stats, hourly_outcomes

    def undo():
        dashboard.window_stats, dashboard.hourly_outcomes = original

    return undo


def check_dashboard_same():
    """The patched dashboard must show the same figures as the current one."""
    from django.utils import timezone

    from deliveries import dashboard

    now = timezone.now()
    before = dashboard.compute_dashboard(now)
    undo = patch_dashboard()
    try:
        after = dashboard.compute_dashboard(now)
    finally:
        undo()
    same = before.windows == after.windows and before.hourly == after.hourly
    return same, [w.__dict__ for w in before.windows], [w.__dict__ for w in after.windows]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--label", default="")
    args = parser.parse_args()

    benchenv.setup_django()
    import pages
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'bench\\_%%'")
        indexes = sorted(row[0] for row in cursor.fetchall())
    print(f"candidate indexes present: {', '.join(indexes) or 'none'}")
    ids = pages.pick_objects()
    by_name = {p[0]: p for p in pages.page_list(ids)}

    experiments = [
        ("events-search", patch_events_search, ["events q=evt_id"]),
        ("deliveries-search", patch_deliveries_search, ["deliveries q=dlv_id"]),
        ("dashboard", patch_dashboard, ["dashboard (cold)"]),
    ]
    same, before_windows, after_windows = check_dashboard_same()
    print(f"dashboard figures identical with the patch: {same}")
    results = []
    for name, patch, page_names in experiments:
        for page_name in page_names:
            page, url, kind, model_label, _ = by_name[page_name]
            before = pages.measure(client, page, url, kind, model_label, args.runs)
            undo = patch()
            try:
                after = pages.measure(client, page, url, kind, model_label, args.runs)
            finally:
                undo()
            results.append({"experiment": name, "page": page, "before": before, "after": after})
            print(
                f"  {name:<18} {page:<22} before: median {before['median_ms']:>7.1f} ms "
                f"max {before['max_ms']:>7.1f} ({before['queries']} q, slowest "
                f"{before['slowest'][0]['ms']:.1f} ms)   after: median "
                f"{after['median_ms']:>7.1f} ms max {after['max_ms']:>7.1f} "
                f"({after['queries']} q, slowest {after['slowest'][0]['ms']:.1f} ms)",
                flush=True,
            )

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = benchenv.RESULTS / f"experiments-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "timestamp": stamp,
                "label": args.label,
                "candidate_indexes": indexes,
                "dashboard_same_figures": same,
                "dashboard_windows_before": before_windows,
                "dashboard_windows_after": after_windows,
                "results": results,
            },
            indent=2,
            default=str,
        )
    )
    print(f"Wrote {out.relative_to(benchenv.ROOT)}")


if __name__ == "__main__":
    main()
