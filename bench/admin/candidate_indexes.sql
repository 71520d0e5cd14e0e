-- Candidate indexes tested by the admin benchmark (bench/admin/README.md), created in the
-- bench database only, never in the project's migrations. All names start with bench_.
--   psql -h 127.0.0.1 -U postgres webhookhub_bench_admin -f bench/admin/candidate_indexes.sql
SET maintenance_work_mem = '1GB';

-- Deliveries changelist: ORDER BY created_at DESC, id DESC (default and every filter
-- without its own ordered index: created_at range, event type through the join).
CREATE INDEX IF NOT EXISTS bench_delivery_recent
    ON deliveries_delivery (created_at DESC, id DESC);

-- Dashboard: attempts of a window counted and their durations read by an index-only
-- scan (would replace attempt_started, which it covers).
CREATE INDEX IF NOT EXISTS bench_attempt_started_cover
    ON deliveries_deliveryattempt (started_at) INCLUDE (duration_ms, succeeded);

-- Events "payload:TEXT" search: UPPER(body) LIKE UPPER('%text%') (Django's icontains).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS bench_event_body_trgm
    ON events_event USING gin (UPPER(body) gin_trgm_ops);

VACUUM ANALYZE deliveries_delivery;
VACUUM ANALYZE deliveries_deliveryattempt;
VACUUM ANALYZE events_event;
