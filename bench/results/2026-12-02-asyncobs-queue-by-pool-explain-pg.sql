CREATE TABLE t_operations (
    seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, pipeline_key TEXT NOT NULL, state TEXT NOT NULL,
    request BYTEA NOT NULL, result BYTEA, error BYTEA, created_at BIGINT NOT NULL, started_at BIGINT,
    finished_at BIGINT, attempts INT NOT NULL DEFAULT 0, lease_owner TEXT, lease_expires_at BIGINT,
    not_before BIGINT NOT NULL, idempotency_scope TEXT, idempotency_key TEXT, request_digest TEXT NOT NULL,
    has_blobs BOOLEAN NOT NULL DEFAULT FALSE);
CREATE INDEX t_operations_by_pipeline ON t_operations (pipeline_key, seq);
CREATE INDEX t_operations_queued ON t_operations (seq) WHERE state = 'queued';
-- 1 000 000 finished operations, then 100 000 queued over 50 pipelines (a runner down for a while).
INSERT INTO t_operations (id, pipeline_key, state, request, created_at, attempts, not_before, request_digest, finished_at)
SELECT 'f' || g, 'ns/p' || (g % 50), 'succeeded', '\x00'::bytea, 1700000000000 + g, 1, 1700000000000 + g, 'd', 1700000000000 + g
FROM generate_series(1, 1000000) g;
INSERT INTO t_operations (id, pipeline_key, state, request, created_at, attempts, not_before, request_digest)
SELECT 'q' || g, 'ns/p' || (g % 50), 'queued', '\x00'::bytea, 1700001000000 + g, g % 2, 1700001000000 + g + 5000, 'd'
FROM generate_series(1, 100000) g;
VACUUM ANALYZE t_operations;
\echo '--- the per-pool count, 100 000 queued of 1 100 000'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT pipeline_key, count(*)::int8,
  min(CASE WHEN attempts = 0 THEN created_at ELSE not_before END)::int8
  FROM t_operations WHERE state = 'queued' GROUP BY pipeline_key;
\echo '--- the global count it replaces'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT count(*)::int8 FROM t_operations WHERE state = 'queued';
-- A short queue on the same table: 1 000 queued.
DELETE FROM t_operations WHERE state = 'queued' AND seq % 100 <> 0;
VACUUM ANALYZE t_operations;
\echo '--- the per-pool count, 1 000 queued of 1 001 000'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT pipeline_key, count(*)::int8,
  min(CASE WHEN attempts = 0 THEN created_at ELSE not_before END)::int8
  FROM t_operations WHERE state = 'queued' GROUP BY pipeline_key;
\echo '--- the global count it replaces'
EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT count(*)::int8 FROM t_operations WHERE state = 'queued';
