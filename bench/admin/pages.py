#!/usr/bin/env python
"""Time the admin pages on the history-sized database written by bench/admin/load.py.

    .venv/bin/python bench/admin/pages.py [--runs 5] [--only deliveries] [--label TEXT]
                                          [--no-explain] [--explain-all] [--limit-ms 300]

Settings come from the environment as in production (bench/admin/benchenv.py):
DATABASE_URL → webhookhub_bench_admin, the Fernet key load.py used, DEBUG=false. A
superuser (`bench-admin`) is logged in with django.test.Client.force_login and every
page is requested in this process (server time: middleware, views, queries, template
rendering; no network, no static files).

For each page: one warm-up request, then `--runs` timed requests (median and max),
then one request under CaptureQueriesContext (kept out of the timings: capturing slows
the database layer) for the number of SQL queries and the slowest one. Changelists
are captured a second time with list_per_page=20 (instead of 100): the same number of
queries means no per-row query. The dashboard is measured cold (its cache entries, the
minute figures and the live figures, deleted from the shared cache before every request)
and warm (cached); so is the JSON the dashboard polls (admin/dashboard/live.json, its
2 s cache entry deleted before every cold request).

For every page over `--limit-ms` (300), its slowest queries (up to 3, each ≥ 20 ms)
are run again under EXPLAIN (ANALYZE, BUFFERS) and the plans are stored.

Writes bench/admin/results/<UTC timestamp>.json, bench/admin/results/latest.json
and, with plans, bench/admin/results/<UTC timestamp>-explain.txt.
"""

import argparse
import json
import re
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchenv

LIST_PER_PAGE_PROBE = 20
# The code behind the pages: fingerprinted in the results, since the tree may change
# between runs.
ADMIN_FILES = (
    "endpoints/admin.py",
    "endpoints/admin_partners.py",
    "endpoints/admin_views.py",
    "endpoints/admin_health.py",
    "events/admin.py",
    "deliveries/admin.py",
    "deliveries/dashboard.py",
    "webhookhub/admin_site.py",
    "webhookhub/charts.py",
    "webhookhub/admin_utils.py",
)


def code_fingerprint() -> dict:
    import hashlib

    out = {}
    for name in ADMIN_FILES:
        path = benchenv.ROOT / name
        out[name] = hashlib.sha1(path.read_bytes()).hexdigest()[:12] if path.exists() else None
    return out


def schema_indexes() -> list:
    """Indexes of the big tables (the migrations' plus any candidate created by hand)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('events_event', "
            "'deliveries_delivery', 'deliveries_deliveryattempt') ORDER BY 1"
        )
        return [row[0] for row in cursor.fetchall()]


def pick_objects():
    """The ids the pages need, chosen from the loaded data (the busiest endpoint and
    partner, the most common and the rarest event type, …)."""
    from django.db.models import Count
    from django.utils import timezone

    from deliveries.models import Delivery
    from endpoints.models import Endpoint
    from events.models import Event, EventType

    busiest_endpoint = Endpoint.objects.order_by("pk").first()  # load.py skews to idx 0
    busiest_partner = busiest_endpoint.partner
    common_type = EventType.objects.exclude(name__startswith="webhookhub.").order_by("pk").first()
    rare_type = EventType.objects.get(name="webhookhub.test")
    last_id = Event.objects.order_by("-pk").values_list("pk", flat=True).first()
    middle_event = Event.objects.filter(pk__gte=last_id // 2).order_by("pk").first()
    two_days_ago = (
        Event.objects.filter(
            created_at__lte=timezone.now() - timedelta(days=2), event_type=common_type
        )
        .order_by("-created_at", "-id")
        .first()
    )
    email = two_days_ago.payload[next(iter(two_days_ago.payload))]["customer"]["email"]
    recent = Event.objects.filter(pk__gte=last_id - 50_000)
    event_two = (
        Delivery.objects.filter(event__in=recent.values("pk"))
        .values("event_id")
        .annotate(n=Count("pk"))
        .filter(n=2)
        .order_by("-event_id")
        .values_list("event_id", flat=True)
        .first()
    )
    event_one = (
        Delivery.objects.filter(event__in=recent.values("pk"))
        .values("event_id")
        .annotate(n=Count("pk"))
        .filter(n=1)
        .order_by("-event_id")
        .values_list("event_id", flat=True)
        .first()
    )
    dead = Delivery.objects.filter(status="dead", attempt_count=8).order_by("-pk").first()
    one_attempt = Delivery.objects.filter(status="succeeded", attempt_count=1).order_by("-pk")[1000]
    recent_delivery = Delivery.objects.order_by("-pk")[5000]
    return {
        "endpoint": busiest_endpoint.pk,
        "partner": busiest_partner.pk,
        "partner_name": busiest_partner.name,
        "common_type": common_type.pk,
        "common_type_name": common_type.name,
        "rare_type": rare_type.pk,
        "rare_type_name": rare_type.name,
        "event_public_id": middle_event.public_id,
        "payload_text": email,
        "event_two_deliveries": event_two,
        "event_one_delivery": event_one,
        "delivery_8_attempts": dead.pk,
        "delivery_1_attempt": one_attempt.pk,
        "delivery_public_id": recent_delivery.public_id,
        "seven_days_ago": (timezone.now() - timedelta(days=7)).replace(microsecond=0).isoformat(),
    }


def q(params: dict) -> str:
    return "?" + urlencode(params)


def page_list(ids):
    """(name, url, kind, model label for changelists, note)."""
    a = "/admin"
    d, e, ep = f"{a}/deliveries/delivery/", f"{a}/events/event/", f"{a}/endpoints/endpoint/"
    return [
        ("dashboard (cold)", f"{a}/", "dashboard_cold", None, "cache entries deleted each run"),
        ("dashboard (warm)", f"{a}/", "dashboard_warm", None, "figures cached"),
        (
            "dashboard live.json (cold)",
            f"{a}/dashboard/live.json",
            "live_cold",
            None,
            "cache entry deleted each run",
        ),
        ("dashboard live.json (warm)", f"{a}/dashboard/live.json", "live_warm", None, "cached 2 s"),
        ("endpoints", ep, "changelist", "endpoints.endpoint", ""),
        (
            "endpoints enabled=0",
            ep + q({"enabled__exact": 0}),
            "changelist",
            "endpoints.endpoint",
            "",
        ),
        (
            "endpoints circuit open",
            ep + q({"circuit": "open,half_open"}),
            "changelist",
            "endpoints.endpoint",
            "",
        ),
        ("partners", f"{a}/endpoints/partner/", "changelist", "endpoints.partner", ""),
        ("api tokens", f"{a}/endpoints/apitoken/", "changelist", "endpoints.apitoken", ""),
        ("events", e, "changelist", "events.event", ""),
        (
            "events type=common",
            e + q({"event_type__id__exact": ids["common_type"]}),
            "changelist",
            "events.event",
            ids["common_type_name"],
        ),
        (
            "events type=rare",
            e + q({"event_type__id__exact": ids["rare_type"]}),
            "changelist",
            "events.event",
            f"{ids['rare_type_name']} (extra)",
        ),
        (
            "events partner",
            e + q({"partner__id__exact": ids["partner"]}),
            "changelist",
            "events.event",
            "busiest partner",
        ),
        (
            "events q=evt_id",
            e + q({"q": ids["event_public_id"]}),
            "changelist",
            "events.event",
            ids["event_public_id"],
        ),
        (
            "events q=payload:",
            e + q({"q": f"payload:{ids['payload_text']}"}),
            "changelist",
            "events.event",
            ids["payload_text"],
        ),
        (
            "events q=partner name",
            e + q({"q": ids["partner_name"]}),
            "changelist",
            "events.event",
            f"{ids['partner_name']} (extra)",
        ),
        ("event types", f"{a}/events/eventtype/", "changelist", "events.eventtype", ""),
        ("deliveries", d, "changelist", "deliveries.delivery", ""),
        (
            "deliveries status=dead",
            d + q({"status__exact": "dead"}),
            "changelist",
            "deliveries.delivery",
            "",
        ),
        (
            "deliveries status in retrying,dead",
            d + q({"status__in": "retrying,dead"}),
            "changelist",
            "deliveries.delivery",
            "",
        ),
        (
            "deliveries endpoint",
            d + q({"endpoint__id__exact": ids["endpoint"]}),
            "changelist",
            "deliveries.delivery",
            "busiest endpoint",
        ),
        (
            "deliveries event type=common",
            d + q({"event__event_type__id__exact": ids["common_type"]}),
            "changelist",
            "deliveries.delivery",
            ids["common_type_name"],
        ),
        (
            "deliveries event type=rare",
            d + q({"event__event_type__id__exact": ids["rare_type"]}),
            "changelist",
            "deliveries.delivery",
            f"{ids['rare_type_name']} (extra)",
        ),
        (
            "deliveries created 7d",
            d + q({"created_at__gte": ids["seven_days_ago"]}),
            "changelist",
            "deliveries.delivery",
            ids["seven_days_ago"],
        ),
        (
            "deliveries q=dlv_id",
            d + q({"q": ids["delivery_public_id"]}),
            "changelist",
            "deliveries.delivery",
            f"{ids['delivery_public_id']} (extra)",
        ),
        (
            "event change (2 deliveries)",
            f"{e}{ids['event_two_deliveries']}/change/",
            "change",
            None,
            "",
        ),
        (
            "event change (1 delivery)",
            f"{e}{ids['event_one_delivery']}/change/",
            "change",
            None,
            "(extra: query count vs 2 deliveries)",
        ),
        (
            "delivery change (8 attempts)",
            f"{d}{ids['delivery_8_attempts']}/change/",
            "change",
            None,
            "dead",
        ),
        (
            "delivery change (1 attempt)",
            f"{d}{ids['delivery_1_attempt']}/change/",
            "change",
            None,
            "(extra: query count vs 8 attempts)",
        ),
        ("endpoint change", f"{ep}{ids['endpoint']}/change/", "change", None, "busiest endpoint"),
        (
            "partner change",
            f"{a}/endpoints/partner/{ids['partner']}/change/",
            "change",
            None,
            "busiest partner",
        ),
    ]


def page_facts(html: str) -> dict:
    facts = {"bytes": len(html)}
    rows = html.count('name="_selected_action"')
    if rows or 'id="result_list"' in html or "changelist" in html:
        facts["rows"] = rows
    m = re.search(r'<p class="paginator">(.*?)</p>', html, re.S)
    if m:
        text = " ".join(re.sub(r"<[^>]+>", " ", m.group(1)).split())
        facts["paginator"] = text[-60:]
    return facts


def request(client, url):
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"{url}: HTTP {response.status_code} {response.get('Location', '')}")
    return response


def measure(client, name, url, kind, model_label, runs):
    from django.apps import apps
    from django.contrib import admin
    from django.core.cache import caches
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deliveries import dashboard

    def before():
        # The figures live in the "shared" cache (a database table here, as in a
        # deployment without Redis), not in Django's default cache.
        if kind == "dashboard_cold":
            caches["shared"].delete_many([dashboard.CACHE_KEY, dashboard.LIVE_CACHE_KEY])
        elif kind == "live_cold":
            caches["shared"].delete(dashboard.LIVE_CACHE_KEY)

    before()
    request(client, url)  # warm-up (and, warm dashboard: fills the cache)
    times = []
    for _ in range(runs):
        before()
        t0 = time.perf_counter()
        response = request(client, url)
        times.append((time.perf_counter() - t0) * 1000)
    before()
    durations = []

    def timed(execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            durations.append((time.perf_counter() - t0) * 1000)

    # CaptureQueriesContext for the SQL as sent (parameters interpolated), the wrapper
    # for sub-millisecond durations (Django logs them rounded to 1 ms).
    with CaptureQueriesContext(connection) as ctx, connection.execute_wrapper(timed):
        response = request(client, url)
    captured = ctx.captured_queries
    if len(captured) != len(durations):
        durations = [float(q["time"]) * 1000 for q in captured]
    queries = [
        {"ms": round(ms, 2), "sql": q["sql"]} for q, ms in zip(captured, durations, strict=True)
    ]
    result = {
        "name": name,
        "url": url,
        "kind": kind,
        "runs_ms": [round(t, 1) for t in times],
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "queries": len(queries),
        "queries_ms": round(sum(q["ms"] for q in queries), 1),
        "slowest": sorted(queries, key=lambda q: -q["ms"])[:5],
        **page_facts(response.content.decode()),
    }
    if kind == "changelist":
        model_admin = admin.site._registry[apps.get_model(model_label)]
        saved = model_admin.list_per_page
        model_admin.list_per_page = LIST_PER_PAGE_PROBE
        try:
            with CaptureQueriesContext(connection) as ctx:
                response = request(client, url)
        finally:
            model_admin.list_per_page = saved
        result[f"queries_at_{LIST_PER_PAGE_PROBE}_rows"] = len(ctx.captured_queries)
        result[f"rows_at_{LIST_PER_PAGE_PROBE}"] = response.content.decode().count(
            'name="_selected_action"'
        )
    return result


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def short(sql: str, n: int = 90) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= n else sql[: n - 1] + "…"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="measure only pages whose name contains this (repeatable)",
    )
    parser.add_argument("--label", default="", help="stored in the JSON (e.g. 'with index X')")
    parser.add_argument("--limit-ms", type=float, default=300.0)
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument(
        "--explain-all",
        action="store_true",
        help="EXPLAIN the slowest query of every page, not only slow pages",
    )
    args = parser.parse_args()

    benchenv.setup_django()
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM events_event), (SELECT count(*) FROM "
            "deliveries_delivery), (SELECT count(*) FROM deliveries_deliveryattempt), "
            "version(), current_setting('shared_buffers'), current_setting('work_mem')"
        )
        n_events, n_deliveries, n_attempts, pg_version, shared_buffers, work_mem = cursor.fetchone()
    code_before = code_fingerprint()
    indexes = schema_indexes()
    candidates = [i for i in indexes if i.startswith("bench_")]
    print(f"candidate indexes present: {', '.join(candidates) or 'none'}")
    ids = pick_objects()
    pages = page_list(ids)
    if args.only:
        pages = [p for p in pages if any(o in p[0] for o in args.only)]

    print(
        f"{benchenv.DB_NAME}: {n_events:,} events, {n_deliveries:,} deliveries, "
        f"{n_attempts:,} attempts; {pg_version.split(',')[0]}, shared_buffers "
        f"{shared_buffers}, work_mem {work_mem}",
        flush=True,
    )
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    results, failed = [], []
    for name, url, kind, model_label, note in pages:
        try:
            r = measure(client, name, url, kind, model_label, args.runs)
        except SystemExit as error:  # a page that does not answer 200: say so, go on
            failed.append({"name": name, "url": url, "error": str(error)})
            print(f"  {name:<36} FAILED: {error}", flush=True)
            continue
        r["note"] = note
        r["over_limit"] = r["median_ms"] > args.limit_ms
        results.append(r)
        print(
            f"  {name:<36} median {r['median_ms']:>8.1f} ms  max {r['max_ms']:>8.1f} ms  "
            f"{r['queries']:>3} queries  slowest {r['slowest'][0]['ms'] if r['slowest'] else 0:.1f} ms"
            f"{'  OVER' if r['over_limit'] else ''}",
            flush=True,
        )
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    code_after = code_fingerprint()
    if code_after != code_before:
        changed = [k for k in code_before if code_before[k] != code_after[k]]
        print(f"WARNING: admin code changed during the run: {', '.join(changed)}")

    plans = []
    if not args.no_explain:
        for r in results:
            if not r["over_limit"] and not args.explain_all:
                continue
            for n, query in enumerate(r["slowest"][:3]):
                if query["ms"] < 20 and not (args.explain_all and n == 0):
                    continue
                plan = explain(query["sql"])
                plans.append(
                    {"page": r["name"], "query_ms": query["ms"], "sql": query["sql"], "plan": plan}
                )

    # ---- table
    cols = (
        f"{'page':<36} {'median':>8} {'max':>8} {'queries':>7} {'q@20':>5} {'rows':>5} "
        f"{'slowest q':>9}  slowest query"
    )
    lines = [cols, "-" * len(cols)]
    for r in results:
        slow = r["slowest"][0] if r["slowest"] else {"ms": 0, "sql": ""}
        q20 = r.get(f"queries_at_{LIST_PER_PAGE_PROBE}_rows", "")
        lines.append(
            f"{r['name']:<36} {r['median_ms']:>8.1f} {r['max_ms']:>8.1f} {r['queries']:>7} "
            f"{q20!s:>5} {r.get('rows', '')!s:>5} {slow['ms']:>9.1f}  {short(slow['sql'])}"
            f"{'   <-- OVER ' + str(int(args.limit_ms)) + ' ms' if r['over_limit'] else ''}"
        )
    lines += [f"{f['name']:<36} FAILED: {f['error']}" for f in failed]
    lines.append("")
    lines.append(
        f"times in ms, median and max of {args.runs} runs after a warm-up; 'queries' "
        f"at 100 rows per page, 'q@20' with list_per_page={LIST_PER_PAGE_PROBE}; "
        f"load average {' '.join(load_before)} -> {' '.join(load_after)}"
    )
    table = "\n".join(lines)
    print()
    print(table)

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    benchenv.RESULTS.mkdir(exist_ok=True)
    data = {
        "timestamp": stamp,
        "label": args.label,
        "database": benchenv.DB_NAME,
        "rows": {"events": n_events, "deliveries": n_deliveries, "attempts": n_attempts},
        "postgres": {"version": pg_version, "shared_buffers": shared_buffers, "work_mem": work_mem},
        "limit_ms": args.limit_ms,
        "runs": args.runs,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "objects": ids,
        "code_sha1": code_before,
        "code_changed_during_run": code_after != code_before,
        "indexes": indexes,
        "pages": results,
        "failed_pages": failed,
        "explain": plans,
        "table": table,
    }
    text = json.dumps(data, indent=2, default=str)
    (benchenv.RESULTS / f"{stamp}.json").write_text(text)
    (benchenv.RESULTS / "latest.json").write_text(text)
    print(f"\nWrote bench/admin/results/{stamp}.json and latest.json")
    if plans:
        out = benchenv.RESULTS / f"{stamp}-explain.txt"
        out.write_text(
            "\n\n".join(
                f"=== {p['page']} — {p['query_ms']:.1f} ms\n{p['sql']}\n\n{p['plan']}"
                for p in plans
            )
        )
        print(f"Wrote bench/admin/results/{stamp}-explain.txt ({len(plans)} plans)")


if __name__ == "__main__":
    main()
