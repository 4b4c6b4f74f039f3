#!/usr/bin/env bash
# Where PostgreSQL async accepts spend their round trips, WAL flushes and CPU: load-independent counts per accepted
# operation, to set beside the accepted/s of async-accept.sh (which move with the machine's load).
#
#   bench/load/pg-accept-profile.sh [DURATION=5s] [CONNECTIONS=32]
#
# Starts a throwaway cluster (scripts/with-postgres.sh, fsync and synchronous_commit on) with pg_stat_statements
# loaded, a release gateway on it (TG_GATEWAY_BIN=path for a binary built elsewhere), drives trigger-async (echo)
# with wrk, lets the accepted operations run, and prints per accepted operation: statements (pg_stat_statements,
# each one round trip; BEGIN and COMMIT count), WAL syncs (pg_stat_wal), CPU of the gateway and of the cluster's
# processes (/proc, utime + stime). "Accepted" is the number of operation rows the run added. Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-5s}"
CONNECTIONS="${2:-32}"
command -v wrk >/dev/null || { echo "pg-accept-profile: wrk is required (apt-get install wrk)" >&2; exit 1; }
if [ -z "${TG_POSTGRES_URL:-}" ]; then
    TG_PG_FSYNC=1 exec scripts/with-postgres.sh "$0" "$DURATION" "$CONNECTIONS"
fi
source bench/load/common.sh

PG_CTL="$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl | head -1)"
RUN_AS=()
[ "$(id -u)" -eq 0 ] && RUN_AS=(runuser -u postgres --)
DATA="$(psql -Atqc "SHOW data_directory")"
psql -v ON_ERROR_STOP=1 -qc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" \
    -c "ALTER SYSTEM SET track_wal_io_timing = on" >/dev/null
"${RUN_AS[@]}" "$PG_CTL" restart -D "$DATA" -w -m fast >/dev/null
psql -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null

printf 'store: {kind: postgres, url: "%s", table_prefix: profile_}\n' "$TG_POSTGRES_URL" >"$TMP/pg.yaml"
start_accepting_gateway "$TMP/pg.yaml"
url="$URL"
sleep 1

# CPU ticks (utime + stime) of the gateway, and of this cluster's postmaster and its children only (other
# clusters may run on the machine).
ticks() { awk '{s += $14 + $15} END {print s}' "${@/#//proc/}" 2>/dev/null; }
cluster_pids() {
    local postmaster
    postmaster="$(head -1 "$DATA/postmaster.pid")"
    echo "$postmaster/stat" $(pgrep -P "$postmaster" | sed 's|$|/stat|')
}
rows() { psql -Atc "SELECT count(*) FROM profile_operations"; }
done_rows() { psql -Atc "SELECT count(*) FROM profile_operations WHERE state IN ('succeeded', 'failed')"; }

# The gateway's statements only: not this script's own polling (count(*)) nor the statistics reads.
GATEWAY_ONLY="query NOT LIKE '%count(*)%' AND query NOT LIKE '%pg_stat%'"
psql -qAtc "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
rows0="$(rows)"
gw0="$(ticks "$PID/stat")"
pg0="$(ticks $(cluster_pids))"
# TG_PERF_OUT=FILE: also samples every CPU with `perf record` while wrk runs (root), for
# `perf report -i FILE --comm postgres --no-children` (where the cluster's CPU goes).
if [ -n "${TG_PERF_OUT:-}" ]; then
    perf record -q -a -g -F 499 -o "$TG_PERF_OUT" -- sleep "${DURATION%s}" 2>/dev/null &
    perf_pid=$!
fi
wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$TMP/post.lua" "$url" >"$TMP/wrk.txt"
[ -n "${TG_PERF_OUT:-}" ] && wait "$perf_pid"
accepted=$(($(rows) - rows0))
connections="$(psql -Atc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' \
    AND application_name <> 'psql'")"
# Let the accepted operations run to the end, so their claims and completions are counted too (at most 60 s).
for _ in $(seq 1 600); do
    [ "$(done_rows)" -ge "$(rows)" ] && break
    sleep 0.1
done
gw1="$(ticks "$PID/stat")"
pg1="$(ticks $(cluster_pids))"
unfinished=$(($(rows) - $(done_rows)))
hz="$(getconf CLK_TCK)"

echo "accepted: $accepted ($(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.txt") req/s while wrk ran; unfinished after" \
    "waiting: $unfinished; load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "connections the gateway's pool held when wrk ended: $connections"
echo "CPU per accepted-and-run operation: gateway $(((gw1 - gw0) * 1000000 / hz / accepted)) us," \
    "PostgreSQL $(((pg1 - pg0) * 1000000 / hz / accepted)) us"
psql -P pager=off -qc "SELECT wal_records, wal_write, wal_sync, round(wal_sync::numeric * 1000 / $accepted, 1) \
    AS syncs_per_1000_accepts, round(wal_sync_time::numeric / greatest(wal_sync, 1), 2) AS ms_per_sync FROM pg_stat_wal"
# blks_per_accept: shared buffers the statement touched (hit or read) per accepted operation, a load-independent
# count of the index and heap pages it read (a claim that reads a pipeline's whole history shows here).
psql -P pager=off -qc "SELECT calls, round(calls::numeric / $accepted, 3) AS per_accept, rows, \
    round(mean_exec_time::numeric, 3) AS mean_ms, round(blks::numeric / $accepted, 1) AS blks_per_accept, \
    left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS statement \
    FROM (SELECT sum(calls) AS calls, sum(rows) AS rows, sum(total_exec_time) / sum(calls) AS mean_exec_time, \
    sum(shared_blks_hit + shared_blks_read) AS blks, min(query) AS query \
    FROM pg_stat_statements WHERE calls > 0 AND $GATEWAY_ONLY \
    GROUP BY left(regexp_replace(query, '\\\$[0-9]+', '\$', 'g'), 40)) AS kinds ORDER BY calls DESC"
psql -qAtc "SELECT 'statements (round trips) per accepted operation: ' || round(sum(calls)::numeric / $accepted, 2) \
    FROM pg_stat_statements WHERE $GATEWAY_ONLY"
