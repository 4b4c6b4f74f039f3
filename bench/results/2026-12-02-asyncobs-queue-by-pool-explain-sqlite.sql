CREATE TABLE operations (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, pipeline_key TEXT NOT NULL,
 state TEXT NOT NULL, request BLOB NOT NULL, result BLOB, error BLOB, created_at INTEGER NOT NULL, started_at INTEGER,
 finished_at INTEGER, attempts INTEGER NOT NULL DEFAULT 0, lease_owner TEXT, lease_expires_at INTEGER,
 not_before INTEGER NOT NULL, idempotency_scope TEXT, idempotency_key TEXT, request_digest TEXT NOT NULL,
 has_blobs INTEGER NOT NULL DEFAULT 0, UNIQUE (idempotency_scope, idempotency_key));
CREATE INDEX operations_by_pipeline ON operations (pipeline_key, seq);
CREATE INDEX operations_by_state ON operations (state, seq);
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000000)
INSERT INTO operations (id, pipeline_key, state, request, created_at, attempts, not_before, request_digest, finished_at)
SELECT 'f' || n, 'ns/p' || (n % 50), 'succeeded', x'00', 1700000000000 + n, 1, 1700000000000 + n, 'd', 1700000000000 + n FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 100000)
INSERT INTO operations (id, pipeline_key, state, request, created_at, attempts, not_before, request_digest)
SELECT 'q' || n, 'ns/p' || (n % 50), 'queued', x'00', 1700001000000 + n, n % 2, 1700001000000 + n + 5000, 'd' FROM g;
.print '--- plan: the per-pool count'
EXPLAIN QUERY PLAN SELECT pipeline_key, count(*) AS n, min(CASE WHEN attempts = 0 THEN created_at ELSE not_before END) AS since FROM operations INDEXED BY operations_by_state WHERE state = 'queued' GROUP BY pipeline_key;
.print '--- plan: the global count'
EXPLAIN QUERY PLAN SELECT count(*) AS n FROM operations INDEXED BY operations_by_state WHERE state = 'queued';
.print '--- VM steps (load-independent): the per-pool count, 100 000 queued of 1 100 000'
.stats vmstep
SELECT count(*), sum(n) FROM (SELECT pipeline_key, count(*) AS n, min(CASE WHEN attempts = 0 THEN created_at ELSE not_before END) AS since FROM operations INDEXED BY operations_by_state WHERE state = 'queued' GROUP BY pipeline_key);
.print '--- the global count'
SELECT count(*) AS n FROM operations INDEXED BY operations_by_state WHERE state = 'queued';
