#!/usr/bin/env bash
# Where PostgreSQL async accepts spend their round trips, WAL flushes and CPU: load-independent counts per accepted
# operation, to set beside the accepted/s of async-accept.sh (which move with the machine's load).
#
#   bench/load/pg-accept-profile.sh [DURATION=5s | REQUESTS] [CONNECTIONS=32]
#
# Starts a throwaway cluster (scripts/with-postgres.sh, fsync and synchronous_commit on) with pg_stat_statements
# loaded, a release gateway on it (TG_GATEWAY_BIN=path for a binary built elsewhere), drives trigger-async (echo)
# with wrk for DURATION (e.g. 5s), or with h2load for a fixed number of REQUESTS (a plain number, e.g. 20000: the
# same work whatever the machine's load, and no wrk needed), lets the accepted operations run, and prints per
# accepted operation: statements (pg_stat_statements, each one round trip; BEGIN and COMMIT count), WAL records,
# bytes and syncs (pg_stat_wal), CPU of the gateway and of the cluster's processes (/proc, utime + stime), the
# cluster's split by process kind (client backends, WAL writer, the rest: checkpointer, background writer,
# autovacuum, and children that exited, counted through the postmaster's cutime + cstime). "Accepted" is the number
# of operation rows the run added. Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-5s}"
CONNECTIONS="${2:-32}"
REQUESTS=""
case "$DURATION" in
*[!0-9]*) command -v wrk >/dev/null || { echo "pg-accept-profile: wrk is required (apt-get install wrk)" >&2; exit 1; } ;;
*) REQUESTS="$DURATION"; command -v h2load >/dev/null || { echo "pg-accept-profile: h2load is required" >&2; exit 1; } ;;
esac
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
# "<kind> <pid> <ticks>" per process of the cluster: the postmaster's own ticks plus those of its children that
# exited (cutime + cstime: an autovacuum worker, a backend that closed), then each living child's, its kind from
# its process title ("postgres: walwriter", "postgres: <user> <db> 127.0.0.1(port) idle": a client backend).
cluster_ticks() {
    local postmaster child title kind
    postmaster="$(head -1 "$DATA/postmaster.pid")"
    awk -v p="$postmaster" '{print "other", p, $14 + $15 + $16 + $17}' "/proc/$postmaster/stat"
    for child in $(pgrep -P "$postmaster"); do
        title="$(tr '\0' ' ' <"/proc/$child/cmdline" 2>/dev/null)" || continue
        case "$title" in
        *"walwriter"*) kind=walwriter ;;
        *"127.0.0.1("*) kind=backend ;;
        *) kind=other ;;
        esac
        awk -v k="$kind" -v c="$child" '{print k, c, $14 + $15}' "/proc/$child/stat" 2>/dev/null || true
    done
}
rows() { psql -Atc "SELECT count(*) FROM profile_operations"; }
done_rows() { psql -Atc "SELECT count(*) FROM profile_operations WHERE state IN ('succeeded', 'failed')"; }

# The gateway's statements only: not this script's own polling (count(*)) nor the statistics reads.
GATEWAY_ONLY="query NOT LIKE '%count(*)%' AND query NOT LIKE '%pg_stat%'"
psql -qAtc "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
rows0="$(rows)"
gw0="$(ticks "$PID/stat")"
pg0="$(ticks $(cluster_pids))"
cluster_ticks >"$TMP/ticks0"
# TG_PERF_OUT=FILE: also samples every CPU with `perf record` while the load runs (root), for
# `perf report -i FILE --comm postgres --no-children` (where the cluster's CPU goes).
if [ -n "${TG_PERF_OUT:-}" ]; then
    perf record -q -a -g -F 499 -o "$TG_PERF_OUT" -- sleep "${REQUESTS:+3600}${REQUESTS:-${DURATION%s}}" \
        2>/dev/null &
    perf_pid=$!
fi
if [ -n "$REQUESTS" ]; then
    printf '%s' '{"data":[{"variable":{"prompt":"hello"}}]}' >"$TMP/body.json"  # wrk's body (common.sh)
    h2load --h1 -n"$REQUESTS" -c"$CONNECTIONS" -m1 -t1 -d "$TMP/body.json" -H 'content-type: application/json' \
        "$url" >"$TMP/h2load.txt"
    rate="$(awk '/^finished in/ {print $4}' "$TMP/h2load.txt")"
    answers="$(awk '/^status codes:/ {print $3 " 2xx, " $5 " 3xx, " $7 " 4xx, " $9 " 5xx"}' "$TMP/h2load.txt")"
else
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$TMP/post.lua" "$url" >"$TMP/wrk.txt"
    rate="$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.txt")"
    answers="$(awk '/Non-2xx/ {print $NF " non-2xx"}' "$TMP/wrk.txt")"
fi
if [ -n "${TG_PERF_OUT:-}" ]; then
    # With REQUESTS, perf stops when the load does (its sleep would outlast it).
    [ -n "$REQUESTS" ] && kill -INT "$perf_pid"
    wait "$perf_pid" || true
fi
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
cluster_ticks >"$TMP/ticks1"
unfinished=$(($(rows) - $(done_rows)))
hz="$(getconf CLK_TCK)"

echo "accepted: $accepted ($rate req/s while the load ran; ${answers:-every answer a 2xx}; unfinished after" \
    "waiting: $unfinished; load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo "connections the gateway's pool held when wrk ended: $connections"
echo "CPU per accepted-and-run operation: gateway $(((gw1 - gw0) * 1000000 / hz / accepted)) us," \
    "PostgreSQL $(((pg1 - pg0) * 1000000 / hz / accepted)) us"
# Per kind: each process's ticks at the end less those at the start (a process that started meanwhile from 0).
awk -v hz="$hz" -v n="$accepted" 'FNR == NR {start[$2] = $3; next} {used[$1] += $3 - start[$2]}
    END {printf "PostgreSQL CPU per operation by kind: backends %d us, WAL writer %d us, other %d us\n",
        used["backend"] * 1e6 / hz / n, used["walwriter"] * 1e6 / hz / n, used["other"] * 1e6 / hz / n}' \
    "$TMP/ticks0" "$TMP/ticks1"
psql -P pager=off -qc "SELECT wal_records, round(wal_records::numeric / $accepted, 1) AS records_per_accept, \
    round(wal_bytes / $accepted) AS bytes_per_accept, round(wal_fpi::numeric / $accepted, 2) AS fpi_per_accept, \
    wal_write, wal_sync, round(wal_sync::numeric * 1000 / $accepted, 1) \
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
