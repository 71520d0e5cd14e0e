#!/usr/bin/env python
"""Load a history-sized database for the admin benchmark (bench/admin/pages.py).

    .venv/bin/python bench/admin/load.py [--events 1000000] [--attempts 3000000]

1. drops and creates the database `webhookhub_bench_admin` (BENCH_ADMIN_DB, which must
   start with that name; server: BENCH_PG, default postgres://postgres@127.0.0.1:5432),
2. runs `manage.py migrate`,
3. creates through the ORM and the project's services (so that secrets are encrypted
   with the bench key): 20 partners, 16 event types (plus the 4 system ones the
   migrations create), 200 endpoints with subscriptions (6 switched off, 5 open circuits
   and 1 half-open, 2 more failing), 30 API tokens,
4. bulk-loads with INSERT … SELECT … FROM generate_series the three big tables:
   events (default 1,000,000 over the last 30 days), deliveries (0, 1 or 2 per event,
   ~1.02 per event) and exactly `--attempts` delivery attempts (default 3,000,000).
   The non-partial secondary indexes, foreign keys and unique constraints of these
   three tables are dropped during the load and recreated from their exact definitions
   afterwards (checked: the catalog is identical before and after),
5. VACUUM ANALYZE (sets the visibility map as autovacuum would on a live database, so
   index-only scans are possible, and collects statistics).

Everything is deterministic (hash-based pseudo-random values) except "now". Prints the
time of every step and writes bench/admin/results/load-<UTC timestamp>.json.
"""

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchenv

BIG_TABLES = ("events_event", "deliveries_delivery", "deliveries_deliveryattempt")
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as ULIDs
# Default retry schedule (deliveries/policy.py): attempt i starts OFFSETS[i-1] seconds
# after the delivery was created; 8 attempts, then dead.
OFFSETS = (0, 5, 305, 2105, 9305, 27305, 63305, 99305)
EVENT_SPAN = timedelta(days=30)

PARTNERS = [
    "Acme Retail",
    "Blue Harbor Logistics",
    "Cobalt Payments",
    "Delta Foods",
    "Evergreen Health",
    "Fjord Travel",
    "Granite Insurance",
    "Helios Energy",
    "Iris Media",
    "Juniper Telecom",
    "Kestrel Airlines",
    "Lumen Books",
    "Meridian Bank",
    "Nimbus Cloud",
    "Orchid Fashion",
    "Pioneer Motors",
    "Quartz Analytics",
    "Redwood Realty",
    "Summit Sports",
    "Tidal Games",
]
EVENT_TYPES = [  # most published first (the load skews toward the first ones)
    ("order.created", "An order was placed."),
    ("order.paid", "An order was paid."),
    ("customer.updated", "A customer changed their details."),
    ("order.shipped", "An order left the warehouse."),
    ("invoice.created", "An invoice was issued."),
    ("payment.succeeded", "A payment went through."),
    ("customer.created", "A customer signed up."),
    ("invoice.paid", "An invoice was paid."),
    ("shipment.delivered", "A parcel was delivered."),
    ("inventory.low", "A product is running out."),
    ("payment.failed", "A payment was declined."),
    ("order.cancelled", "An order was cancelled."),
    ("refund.created", "A refund was issued."),
    ("subscription.renewed", "A subscription renewed."),
    ("subscription.cancelled", "A subscription was cancelled."),
    ("product.updated", "A product changed."),
]
ENDPOINT_NAMES = [
    "orders-prod",
    "billing",
    "crm-sync",
    "warehouse",
    "analytics",
    "notifications",
    "erp",
    "fraud-check",
    "data-lake",
    "support-desk",
]
SUBSCRIPTION_SETS = [
    ["*"],
    ["order.*"],
    ["order.paid", "invoice.paid", "payment.*"],
    ["customer.*"],
    ["order.shipped", "shipment.delivered", "inventory.low"],
    ["*"],
    ["invoice.*"],
    ["payment.failed", "refund.created"],
    ["*"],
    ["customer.*", "subscription.*"],
]
# Endpoint index (0..199, 10 per partner, busiest first) -> state.
DISABLED = {  # idx: (kind, disabled hours ago)
    57: ("manual", 72),
    88: ("auto", 6),
    121: ("gone", 240),
    143: ("manual", 24),
    171: ("auto", 48),
    196: ("manual", 480),
}
OPEN_CIRCUITS = {  # idx: (state, failing since hours ago)
    3: ("open", 2),
    45: ("open", 30),
    77: ("open", 5),
    109: ("open", 50),
    133: ("open", 12),
    160: ("half_open", 1),
}
FAILING_CLOSED = {12: 0.33, 99: 0.33}  # idx: failing since hours ago


def log(msg):
    print(msg, flush=True)


class Timer:
    def __init__(self):
        self.steps = []

    def step(self, name):
        timer = self

        class _Step:
            def __enter__(self):
                self.t0 = time.perf_counter()
                log(f"-- {name} …")

            def __exit__(self, *exc):
                dt = time.perf_counter() - self.t0
                timer.steps.append({"step": name, "seconds": round(dt, 2)})
                log(f"   {name}: {dt:.1f} s")

        return _Step()


def b32(expr: str, length: int) -> str:
    """SQL: `expr` (a bigint < 32**length) in `length` Crockford base32 digits."""
    return " || ".join(
        f"substr('{ALPHABET}', ((({expr}) >> {5 * (length - 1 - i)}) & 31)::int + 1, 1)"
        for i in range(length)
    )


def public_id(prefix: str, ms_expr: str, counter_expr: str) -> str:
    """SQL for a ULID-shaped id: prefix_ + 10 digits of milliseconds + 16 of a counter.
    Unique (the counter is) and sortable by time, like the service's ULIDs."""
    return f"'{prefix}_' || {b32(ms_expr, 10)} || '000000' || {b32(counter_expr, 10)}"


def attempts_possible(age_expr: str) -> str:
    """SQL: how many attempts the default schedule has made by `age` seconds."""
    whens = " ".join(
        f"WHEN {age_expr} > {o + 1} THEN {i + 1}" for i, o in reversed(list(enumerate(OFFSETS)))
    )
    return f"(CASE {whens} ELSE 0 END)"


# ----------------------------------------------------------------------------------------


def recreate_database(timer):
    import psycopg

    with timer.step(f"drop and create database {benchenv.DB_NAME}"):
        with psycopg.connect(benchenv.database_url("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{benchenv.DB_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{benchenv.DB_NAME}"')
    with timer.step("manage.py migrate"):
        env = {**__import__("os").environ, **benchenv.settings_env(create_key=True)}
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=benchenv.ROOT,
            env=env,
            check=True,
        )


def create_small_tables(timer, now):
    """Partners, event types, endpoints (through endpoint_create: encrypted secrets),
    subscriptions and tokens, through the ORM."""
    from django.db import transaction

    from deliveries.models import CircuitState, EndpointHealth
    from endpoints.models import ApiToken, Endpoint, Partner
    from endpoints.services import (
        api_token_create,
        endpoint_create,
        endpoint_disable,
        partner_create,
    )
    from events.models import EventType

    with timer.step("ORM: partners, event types, 200 endpoints, subscriptions, tokens"):
        with transaction.atomic():
            for name, description in EVENT_TYPES:
                EventType.objects.create(
                    name=name,
                    description=description,
                    example={"object": {"id": "obj_123", "amount": 4200, "currency": "EUR"}},
                )
            partners = []
            for i, name in enumerate(PARTNERS):
                slug = name.lower().replace(" ", "-")
                partners.append(partner_create(name=name, contact_email=f"ops@{slug}.example.com"))
            endpoints = []
            for idx in range(200):
                partner = partners[idx // 10]
                slug = partner.name.lower().replace(" ", "-")
                ep_name = ENDPOINT_NAMES[idx % 10]
                fields = {}
                if idx % 4 == 0:
                    fields["auth_token"] = f"tok_{slug}_{idx:03d}_live_0123456789abcdef"
                if idx % 5 == 0:
                    fields["headers"] = {"X-Partner-Env": "production"}
                if idx % 17 == 0:
                    fields["rate_limit_per_second"] = 50
                if idx % 23 == 0:
                    fields["ordered"] = True
                endpoints.append(
                    endpoint_create(
                        partner,
                        name=ep_name,
                        url=f"https://hooks.{slug}.example.com/webhooks/{ep_name}",
                        event_types=SUBSCRIPTION_SETS[idx % 10],
                        by="bench",
                        description=f"{partner.name} {ep_name} receiver",
                        **fields,
                    )
                )
            for i, partner in enumerate(partners):
                api_token_create(role=ApiToken.Role.PARTNER, partner=partner, name="ci", by="bench")
                if i % 2 == 0:
                    token, _ = api_token_create(
                        role=ApiToken.Role.PARTNER, partner=partner, name="old", by="bench"
                    )
                    ApiToken.objects.filter(pk=token.pk).update(revoked_at=now - timedelta(days=9))
            for i in range(5):
                api_token_create(role=ApiToken.Role.PUBLISHER, name=f"publisher-{i}", by="bench")

            # History: everything existed before the events.
            past = now - timedelta(days=120)
            Partner.objects.update(created_at=past)
            Endpoint.objects.update(created_at=past, updated_at=past)
            EventType.objects.update(created_at=past)
            ApiToken.objects.update(created_at=past, last_used_at=now - timedelta(minutes=3))

            # Health states (on the endpoints' health rows, deliveries.EndpointHealth).
            for idx, (state, hours) in OPEN_CIRCUITS.items():
                since = now - timedelta(hours=hours)
                EndpointHealth.objects.filter(pk=endpoints[idx].pk).update(
                    circuit_state=state,
                    consecutive_failures=5 + int(hours * 3),
                    failing_since=since,
                    circuit_opened_at=since + timedelta(minutes=2),
                    circuit_open_count=1 + int(hours // 3),
                    circuit_retry_at=now + timedelta(minutes=10),
                    failure_notice_at=since + timedelta(hours=1) if hours > 1 else None,
                )
            for idx, hours in FAILING_CLOSED.items():
                EndpointHealth.objects.filter(pk=endpoints[idx].pk).update(
                    consecutive_failures=2, failing_since=now - timedelta(hours=hours)
                )
            for idx, (kind, hours) in DISABLED.items():
                endpoint_disable(
                    endpoints[idx],
                    by="admin:alice" if kind == "manual" else "webhookhub",
                    reason={
                        "manual": "Partner asked to pause during their migration",
                        "auto": "Failing for 120 hours",
                        "gone": "Receiver answered 410 Gone",
                    }[kind],
                    kind=kind,
                )
                at = now - timedelta(hours=hours)
                Endpoint.objects.filter(pk=endpoints[idx].pk).update(disabled_at=at)
                EndpointHealth.objects.filter(pk=endpoints[idx].pk).update(
                    failing_since=(at - timedelta(hours=120)) if kind == "auto" else None,
                    consecutive_failures=400 if kind == "auto" else 0,
                )
            assert list(Endpoint.objects.order_by("pk").values_list("pk", flat=True)) == [
                e.pk for e in endpoints
            ]
            assert EndpointHealth.objects.exclude(circuit_state=CircuitState.CLOSED).count() == 6


# ----------------------------------------------------------------------------------------


def catalog(cur):
    """Definitions of the big tables' indexes and constraints (to drop and restore)."""
    cur.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname, c.contype, pg_get_constraintdef(c.oid)
        FROM pg_constraint c
        WHERE c.conrelid::regclass::text = ANY(%s)
        ORDER BY 1, 2
        """,
        [list(BIG_TABLES)],
    )
    constraints = cur.fetchall()
    cur.execute(
        """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' AND tablename = ANY(%s)
        ORDER BY 1, 2
        """,
        [list(BIG_TABLES)],
    )
    indexes = cur.fetchall()
    return constraints, indexes


def bulk_load(timer, now, n_events, n_attempts):
    import psycopg

    conn = psycopg.connect(benchenv.database_url(), autocommit=True)
    cur = conn.cursor()
    for setting in (
        "SET synchronous_commit = off",
        "SET work_mem = '256MB'",
        "SET maintenance_work_mem = '1GB'",
        "SET temp_buffers = '1GB'",
        "SET max_parallel_maintenance_workers = 2",
        "SET jit = off",
    ):
        cur.execute(setting)

    constraints, indexes = catalog(cur)
    constraint_names = {name for _, name, _, _ in constraints}
    with timer.step("drop secondary indexes and constraints of the big tables"):
        # Foreign keys first (they depend on the referenced unique indexes).
        for table, name, kind, _ in sorted(constraints, key=lambda c: c[2] != "f"):
            if kind in ("f", "u"):
                cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        # Partial indexes stay (few rows qualify; re-creating one from pg_indexes would
        # deparse its predicate differently from what the migration wrote).
        for _table, name, _ in indexes:
            if name not in constraint_names and " WHERE " not in _:
                cur.execute(f'DROP INDEX "{name}"')

    t_now = f"'{now.isoformat()}'::timestamptz"
    t0 = f"'{(now - EVENT_SPAN).isoformat()}'::timestamptz"
    step_s = EVENT_SPAN.total_seconds() / n_events
    offsets = "ARRAY[" + ",".join(str(o) for o in OFFSETS) + "]::float8[]"

    with timer.step("helpers (temp functions and tables)"):
        cur.execute(
            """
            CREATE FUNCTION pg_temp.r(n bigint, seed bigint) RETURNS float8
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS $$ SELECT (hashint8extended(n, seed) & 2147483647)::float8 / 2147483648.0 $$
            """
        )
        cur.execute(
            """
            CREATE TEMP TABLE b_ep AS
            SELECT (row_number() OVER (ORDER BY e.id) - 1)::int AS idx, e.id, e.partner_id,
                   e.url, e.enabled, e.disabled_at, h.failing_since
            FROM endpoints_endpoint e
            LEFT JOIN deliveries_endpointhealth h ON h.endpoint_id = e.id
            """
        )
        cur.execute(
            """
            CREATE TEMP TABLE b_et AS
            SELECT (row_number() OVER (ORDER BY id) - 1)::int AS idx, id, name,
                   split_part(name, '.', 1) AS obj, split_part(name, '.', 2) AS verb
            FROM events_eventtype WHERE name NOT LIKE 'webhookhub.%'
            """
        )
        cur.execute("SELECT id FROM events_eventtype WHERE name = 'webhookhub.test'")
        test_type = cur.fetchone()[0]
        cur.execute("ANALYZE b_ep; ANALYZE b_et")

    # Event n (1..N) is created at T0 + n*step; its first delivery goes to endpoint
    # ep_idx(n) (skewed: endpoint 0 gets ~7 %), 40 % of events target that endpoint's
    # partner, the rest are broadcasts. 0.1 % are webhookhub.test events (a rare type).
    event_created = f"({t0} + s.n * interval '{step_s} seconds')"
    event_ms = f"(extract(epoch from {event_created}) * 1000)::bigint"
    ep_idx = "LEAST(199, floor(200 * pg_temp.r(s.n, 1) ^ 2))::int"
    data = """format(
        '{"%s":{"id":"%s_%s","status":"%s","amount":%s,"currency":"%s",'
        '"customer":{"id":"cus_%s","email":"customer%s@example.com","name":"Customer %s"},'
        '"items":[{"sku":"SKU-%s","quantity":%s,"unit_price":%s},'
        '{"sku":"SKU-%s","quantity":%s,"unit_price":%s}],'
        '"metadata":{"channel":"%s","region":"%s"}}}',
        z.obj, left(z.obj, 3), z.n, z.verb,
        100 + floor(pg_temp.r(z.n, 20) * 99900)::int,
        (ARRAY['EUR','USD','GBP'])[1 + floor(pg_temp.r(z.n, 21) * 3)::int],
        z.cust, z.cust, z.cust,
        floor(pg_temp.r(z.n, 22) * 5000)::int, 1 + floor(pg_temp.r(z.n, 23) * 3)::int,
        100 + floor(pg_temp.r(z.n, 24) * 9900)::int,
        floor(pg_temp.r(z.n, 25) * 5000)::int, 1 + floor(pg_temp.r(z.n, 26) * 3)::int,
        100 + floor(pg_temp.r(z.n, 27) * 9900)::int,
        (ARRAY['web','ios','android','api','pos'])[1 + floor(pg_temp.r(z.n, 28) * 5)::int],
        (ARRAY['eu-west','us-east','ap-south'])[1 + floor(pg_temp.r(z.n, 29) * 3)::int])"""

    with timer.step(f"INSERT {n_events:,} events"):
        cur.execute(
            f"""
            INSERT INTO events_event (id, public_id, event_type_id, partner_id, source,
                payload, body, idempotency_key, tags, schema_problems, occurred_at, created_at,
                expunged_by)
            SELECT y.n, y.public_id, y.type_id, y.partner_id, y.source, y.data::jsonb,
                '{{"id":"' || y.public_id || '","type":"' || y.type_name
                    || '","timestamp":"'
                    || to_char(y.occurred AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
                    || '","data":' || y.data || '}}',
                y.idem, y.tags, '[]'::jsonb, y.occurred, y.created, ''
            FROM (
                SELECT z.n, z.public_id, z.created, z.occurred, z.idem, z.tags, z.source,
                    CASE WHEN z.test THEN {test_type} ELSE z.type_id END AS type_id,
                    CASE WHEN z.test THEN 'webhookhub.test' ELSE z.type_name END AS type_name,
                    CASE WHEN NOT z.test AND pg_temp.r(z.n, 3) < 0.4 THEN z.partner_id END
                        AS partner_id,
                    CASE WHEN z.test THEN '{{"test":true,"message":"Test event from webhookhub"}}'
                        ELSE {data} END AS data
                FROM (
                    SELECT s.n, {event_created} AS created,
                        {event_created} - pg_temp.r(s.n, 30) * interval '2 seconds' AS occurred,
                        {public_id("evt", event_ms, "s.n")} AS public_id,
                        pg_temp.r(s.n, 31) < 0.001 AS test,
                        CASE WHEN pg_temp.r(s.n, 7) < 0.3 THEN 'idem-' || s.n END AS idem,
                        CASE WHEN pg_temp.r(s.n, 32) < 0.2 THEN '["priority"]'::jsonb
                            ELSE '[]'::jsonb END AS tags,
                        (ARRAY['shop-api','billing','crm','warehouse'])
                            [1 + floor(pg_temp.r(s.n, 33) * 4)::int] AS source,
                        floor(pg_temp.r(s.n, 11) * 50000)::int AS cust,
                        et.id AS type_id, et.name AS type_name, et.obj, et.verb,
                        ep.partner_id
                    FROM generate_series(1, {n_events}) AS s(n)
                    JOIN b_ep ep ON ep.idx = {ep_idx}
                    JOIN b_et et ON et.idx = LEAST(15, floor(16 * pg_temp.r(s.n, 2) ^ 3))::int
                ) z
            ) y
            """
        )

    # Deliveries: 3 % of events have none (nobody subscribed), 5 % two (a second endpoint
    # of the same partner), the rest one. Delivery id = 2n + j - 2 (gaps, like a sequence).
    age = "extract(epoch from (" + t_now + " - d.created_at))"
    dlv_ms = "(extract(epoch from d.created_at) * 1000)::bigint"
    with timer.step("stage deliveries (temp table: status, attempt counts)"):
        cur.execute(
            f"""
            CREATE TEMP TABLE b_dlv AS
            SELECT x.*,
                CASE x.status
                    WHEN 'pending' THEN 0 WHEN 'in_flight' THEN 0
                    WHEN 'dead' THEN 8
                    WHEN 'retrying' THEN LEAST(7, x.na)
                    WHEN 'cancelled' THEN LEAST(x.na, 1 + floor(3 * pg_temp.r(x.id, 12))::int)
                    ELSE LEAST(x.na, 1 + floor(6 * pg_temp.r(x.id, 9) ^ 1.6)::int)
                END AS attempt_count
            FROM (
                SELECT y.*,
                    CASE
                        WHEN y.held THEN 'pending'
                        WHEN y.age < 20 THEN 'pending'
                        WHEN y.age < 60 AND pg_temp.r(y.id, 13) < 0.3 THEN 'in_flight'
                        WHEN y.failing AND y.age > {OFFSETS[-1] + 1} THEN 'dead'
                        WHEN y.failing THEN 'retrying'
                        WHEN y.u < 0.012 AND y.age > {OFFSETS[-1] + 1} THEN 'dead'
                        WHEN y.u < 0.012 THEN 'retrying'
                        WHEN y.u < 0.017 THEN 'cancelled'
                        ELSE 'succeeded'
                    END AS status
                FROM (
                    SELECT d.*, ep.id AS endpoint_id, ep.url, {age} AS age,
                        {attempts_possible(age)} AS na,
                        pg_temp.r(d.id, 6) AS u,
                        (NOT ep.enabled AND d.created_at >= ep.disabled_at) AS held,
                        (ep.failing_since IS NOT NULL AND d.created_at >= ep.failing_since
                            AND (ep.enabled OR d.created_at < ep.disabled_at)) AS failing,
                        {public_id("dlv", dlv_ms, "d.id")} AS public_id
                    FROM (
                        SELECT s.n AS event_id, 2 * s.n + j - 2 AS id,
                            {event_created} + (0.004 * j + 0.05 * pg_temp.r(s.n, 8))
                                * interval '1 second' AS created_at,
                            {public_id("evt", event_ms, "s.n")} AS event_public_id,
                            CASE WHEN j = 1 THEN a.ep1
                                ELSE (a.ep1 / 10) * 10
                                    + (a.ep1 % 10 + 1 + floor(pg_temp.r(s.n, 5) * 9)::int) % 10
                            END AS ep_idx
                        FROM generate_series(1, {n_events}) AS s(n)
                        CROSS JOIN LATERAL (SELECT {ep_idx} AS ep1) a
                        CROSS JOIN LATERAL generate_series(1,
                            CASE WHEN pg_temp.r(s.n, 4) < 0.03 THEN 0
                                 WHEN pg_temp.r(s.n, 4) < 0.08 THEN 2 ELSE 1 END) AS j
                    ) d
                    JOIN b_ep ep ON ep.idx = d.ep_idx
                ) y
            ) x
            """
        )
        cur.execute("SELECT sum(attempt_count), count(*) FROM b_dlv")
        total, n_deliveries = cur.fetchone()
        deficit = n_attempts - int(total)
        log(f"   {n_deliveries:,} deliveries, {total:,} attempts before adjusting ({deficit:+,})")
        if deficit > 0:
            cur.execute(
                """
                UPDATE b_dlv SET attempt_count = attempt_count + 1 WHERE id IN (
                    SELECT id FROM b_dlv
                    WHERE status = 'succeeded' AND attempt_count < LEAST(na, 8)
                    ORDER BY pg_temp.r(id, 14) LIMIT %s)
                """,
                [deficit],
            )
        elif deficit < 0:
            cur.execute(
                """
                UPDATE b_dlv SET attempt_count = attempt_count - 1 WHERE id IN (
                    SELECT id FROM b_dlv WHERE status = 'succeeded' AND attempt_count > 1
                    ORDER BY pg_temp.r(id, 14) LIMIT %s)
                """,
                [-deficit],
            )
        cur.execute("SELECT sum(attempt_count) FROM b_dlv")
        total = int(cur.fetchone()[0])
        if total != n_attempts:
            log(f"   WARNING: {total:,} attempts, not {n_attempts:,}")
        cur.execute("ANALYZE b_dlv")

    # Attempt i of delivery d: started OFFSETS[i-1] (+ up to 0.85 s) after the delivery
    # was created; a failure is one of 5 kinds (fk), the same in both INSERTs below.
    started = (
        f"(d.created_at + ({offsets})[{{i}}] * interval '1 second'"
        f" + (0.05 + 0.8 * pg_temp.r(d.id * 8 + {{i}}, 15)) * interval '1 second')"
    )
    fk = "floor(5 * pg_temp.r(d.id * 8 + {i}, 16))::int"
    ok_code = "(ARRAY[200,200,200,200,202,204])[1 + floor(6 * pg_temp.r(d.id * 8 + {i}, 17))::int]"
    fail_code = "(ARRAY[503,500,NULL,NULL,502])[1 + {fk}]"
    bodies = {
        503: "<html><head><title>503 Service Temporarily Unavailable</title></head><body>"
        "<center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx"
        "</center></body></html>",
        500: '{"error":"internal_error","message":"Something went wrong on our side",'
        '"request_id":"req_',
        502: "<html><head><title>502 Bad Gateway</title></head><body><center><h1>"
        "502 Bad Gateway</h1></center><hr><center>cloudflare</center></body></html>",
    }
    esc = {code: body.replace("{", "{{").replace("}", "}}") for code, body in bodies.items()}
    fail_body = (
        "(CASE {fk} WHEN 0 THEN '"
        + esc[503]
        + "' WHEN 1 THEN '"
        + esc[500]
        + "' || d.id || '\"}}' WHEN 4 THEN '"
        + esc[502]
        + "' ELSE '' END)"
    )
    fail_message = (
        "(CASE {fk} WHEN 0 THEN 'HTTP 503' WHEN 1 THEN 'HTTP 500' WHEN 2 THEN "
        "'Read timed out after 15 s' WHEN 3 THEN 'Connection refused' ELSE 'HTTP 502' END)"
    )
    fail_kind = "(CASE {fk} WHEN 2 THEN 'timeout' WHEN 3 THEN 'connection' ELSE 'http_status' END)"
    duration = (
        "(CASE WHEN {ok} THEN 40 + floor(900 * pg_temp.r(d.id * 8 + {i}, 18) ^ 4)::int"
        " WHEN {fk} = 2 THEN 15000 + floor(200 * pg_temp.r(d.id * 8 + {i}, 18))::int"
        " WHEN {fk} = 3 THEN 1 + floor(40 * pg_temp.r(d.id * 8 + {i}, 18))::int"
        " ELSE 30 + floor(2500 * pg_temp.r(d.id * 8 + {i}, 18) ^ 2)::int END)"
    )

    def expr(template, i, ok="false"):
        f = fk.format(i=i)
        return template.format(i=i, fk=f, ok=ok)

    last = "d.attempt_count"
    last_ok = "(d.status = 'succeeded')"
    last_fail_code = expr(fail_code, last)
    last_error = (
        f"(CASE WHEN {expr(fk, last)} IN (0, 1, 4) THEN left({expr(fail_message, last)}"
        f" || ': ' || {expr(fail_body, last)}, 500) ELSE {expr(fail_message, last)} END)"
    )
    last_started = expr(started, last)
    last_duration = expr(duration, last, ok=last_ok)
    with timer.step(f"INSERT {n_deliveries:,} deliveries"):
        cur.execute(
            f"""
            INSERT INTO deliveries_delivery (id, public_id, event_id, endpoint_id, status,
                attempt_count, next_attempt_at, claimed_until, lease_token, next_trigger,
                next_trigger_by, last_attempt_at, last_status_code, last_error, created_at,
                updated_at, completed_at)
            SELECT d.id, d.public_id, d.event_id, d.endpoint_id, d.status, d.attempt_count,
                CASE WHEN d.status = 'pending' AND NOT d.held THEN d.created_at
                     WHEN d.status = 'retrying' THEN d.created_at
                        + ({offsets})[d.attempt_count + 1] * interval '1 second'
                END,
                CASE WHEN d.status = 'in_flight' THEN {t_now} + interval '30 seconds' END,
                CASE WHEN d.status = 'in_flight' THEN md5(d.id::text) ELSE '' END,
                CASE WHEN d.attempt_count > 0 AND d.status IN ('retrying', 'pending')
                    THEN 'retry' ELSE 'auto' END,
                '',
                CASE WHEN d.attempt_count > 0 THEN {last_started} END,
                CASE WHEN d.attempt_count = 0 THEN NULL
                     WHEN {last_ok} THEN {expr(ok_code, last)}
                     ELSE {last_fail_code} END,
                CASE WHEN d.attempt_count = 0 OR {last_ok} THEN '' ELSE {last_error} END,
                d.created_at,
                CASE WHEN d.attempt_count > 0
                    THEN {last_started} + {last_duration} * interval '1 millisecond'
                    ELSE d.created_at END,
                CASE WHEN d.status IN ('succeeded', 'dead') THEN
                        {last_started} + {last_duration} * interval '1 millisecond'
                     WHEN d.status = 'cancelled' THEN LEAST({t_now},
                        COALESCE({last_started}, d.created_at) + interval '1 hour')
                END
            FROM b_dlv d
            ORDER BY d.id
            """
        )

    i = "g.i"
    ok = f"(d.status = 'succeeded' AND {i} = d.attempt_count)"
    with timer.step(f"INSERT {total:,} delivery attempts"):
        cur.execute(
            f"""
            INSERT INTO deliveries_deliveryattempt (delivery_id, number, trigger, triggered_by,
                started_at, duration_ms, request_url, request_headers, response_status_code,
                response_headers, response_body, response_body_truncated, error_kind,
                error_message, succeeded)
            SELECT d.id, {i},
                CASE WHEN {i} = 1 THEN 'auto' ELSE 'retry' END, '',
                {expr(started, i)},
                {expr(duration, i, ok=ok)},
                d.url,
                jsonb_build_object(
                    'Content-Type', 'application/json',
                    'User-Agent', 'webhookhub/0.1.0',
                    'webhook-id', d.event_public_id,
                    'webhook-timestamp', extract(epoch from {expr(started, i)})::bigint::text,
                    'webhook-signature', '••••' || left(md5(d.id::text || {i}), 4)),
                CASE WHEN {ok} THEN {expr(ok_code, i)} ELSE {expr(fail_code, i)} END,
                CASE WHEN NOT {ok} AND {expr(fk, i)} IN (2, 3) THEN '{{}}'::jsonb
                    ELSE jsonb_build_object(
                        'Content-Type', CASE WHEN {ok} OR {expr(fk, i)} = 1
                            THEN 'application/json' ELSE 'text/html' END,
                        'Date', to_char({expr(started, i)} AT TIME ZONE 'UTC',
                            'Dy, DD Mon YYYY HH24:MI:SS "GMT"'),
                        'Server', 'nginx',
                        'X-Request-Id', 'req_' || d.id || '_' || {i}) END,
                CASE WHEN {ok} THEN '{{"received":true}}' ELSE {expr(fail_body, i)} END,
                false,
                CASE WHEN {ok} THEN '' ELSE {expr(fail_kind, i)} END,
                CASE WHEN {ok} THEN '' ELSE {expr(fail_message, i)} END,
                {ok}
            FROM b_dlv d
            CROSS JOIN LATERAL generate_series(1, d.attempt_count) AS g(i)
            ORDER BY 5  -- started_at: attempts are written as they happen
            """
        )

    with timer.step("sequences"):
        for table, column in (
            ("events_event", "id"),
            ("deliveries_delivery", "id"),
            ("deliveries_deliveryattempt", "id"),
        ):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                f" (SELECT max({column}) FROM {table}))"
            )
        cur.execute("DROP TABLE b_dlv")

    with timer.step("recreate indexes and constraints"):
        for _table, name, indexdef in indexes:
            if name not in constraint_names and " WHERE " not in indexdef:
                cur.execute(indexdef)
        for table, name, kind, definition in sorted(constraints, key=lambda c: c[2] == "f"):
            if kind in ("f", "u"):
                cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        after = catalog(cur)
        if after != (constraints, indexes):
            for old, new in zip((constraints, indexes), after, strict=True):
                for row in sorted(set(old) ^ set(new)):
                    log(f"   {'before' if row in old else 'after '}: {row}")
            raise SystemExit("The indexes/constraints differ from the migrated schema!")
        log(f"   {len(indexes)} indexes and {len(constraints)} constraints restored, identical")

    with timer.step("VACUUM ANALYZE"):
        cur.execute("VACUUM ANALYZE")

    cur.execute(
        "SELECT status, count(*), sum(attempt_count) FROM deliveries_delivery "
        "GROUP BY 1 ORDER BY 2 DESC"
    )
    statuses = {s: {"deliveries": n, "attempts": int(a)} for s, n, a in cur.fetchall()}
    counts = {}
    for table in (
        "endpoints_partner",
        "endpoints_endpoint",
        "endpoints_subscription",
        "endpoints_apitoken",
        "events_eventtype",
        *BIG_TABLES,
    ):
        cur.execute(f"SELECT count(*), pg_total_relation_size('{table}') FROM {table}")
        n, size = cur.fetchone()
        counts[table] = {"rows": n, "total_bytes": size}
    conn.close()
    return statuses, counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--attempts", type=int, default=3_000_000)
    args = parser.parse_args()

    started = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    timer = Timer()
    benchenv.fernet_key(create=True)
    recreate_database(timer)
    benchenv.setup_django()
    create_small_tables(timer, now)
    statuses, counts = bulk_load(timer, now, args.events, args.attempts)
    elapsed = time.perf_counter() - started

    log("\nDeliveries by status:")
    for status, row in statuses.items():
        log(f"  {status:<10} {row['deliveries']:>10,} deliveries {row['attempts']:>10,} attempts")
    log("\nTables:")
    for table, row in counts.items():
        log(f"  {table:<28} {row['rows']:>10,} rows {row['total_bytes'] / 2**20:>9,.0f} MB")
    log(f"\nLoaded {benchenv.DB_NAME} in {elapsed:.0f} s ({elapsed / 60:.1f} min).")

    benchenv.RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = benchenv.RESULTS / f"load-{stamp}.json"
    out.write_text(
        json.dumps(
            {
                "database": benchenv.DB_NAME,
                "now": now.isoformat(),
                "seconds": round(elapsed, 1),
                "steps": timer.steps,
                "statuses": statuses,
                "tables": counts,
            },
            indent=2,
        )
    )
    log(f"Wrote {out.relative_to(benchenv.ROOT)}")


if __name__ == "__main__":
    main()
