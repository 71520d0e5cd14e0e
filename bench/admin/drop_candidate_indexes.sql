-- Back to the schema the migrations create (see candidate_indexes.sql).
DROP INDEX IF EXISTS bench_delivery_recent;
DROP INDEX IF EXISTS bench_attempt_started_cover;
DROP INDEX IF EXISTS bench_event_body_trgm;
DROP EXTENSION IF EXISTS pg_trgm;
ANALYZE deliveries_delivery;
ANALYZE deliveries_deliveryattempt;
ANALYZE events_event;
