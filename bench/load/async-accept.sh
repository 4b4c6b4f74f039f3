#!/usr/bin/env bash
# Accepted async triggers per second: wrk POSTs trigger-async (echo, one small item) against a release
# build, each answer given only after its operation is committed. Runs on SQLite (the embedded default,
# data dir in a temp directory on the same disk as $TMPDIR) and on PostgreSQL (a throwaway cluster from
# scripts/with-postgres.sh, run with fsync and synchronous_commit on as in production: TG_PG_FSYNC=1).
#
#   bench/load/async-accept.sh [DURATION=10s] [CONNECTIONS=32]
#
# Set BUILD=debug to measure a debug build (faster to build, slower to run), or TG_GATEWAY_BIN=path to measure
# a binary built elsewhere; TG_BENCH_SQLITE_ONLY=1 skips the PostgreSQL half (TG_BENCH_PG_ONLY=1 the SQLite one).
# Besides accepted/s it prints the gateway's CPU (user + system, /proc/PID/stat) per accepted operation during the
# run: every accepted operation is also claimed, run and completed in the same process. Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION="${1:-10s}"
CONNECTIONS="${2:-32}"
command -v wrk >/dev/null || { echo "async-accept: wrk is required (apt-get install wrk)" >&2; exit 1; }

source bench/load/common.sh

# Starts the gateway with config $1, waits for its port, runs wrk, prints "<label> <req/s>".
run() {
    local label="$1" config="$2"
    start_accepting_gateway "$config"
    local url="$URL"
    local cpu_before cpu_after ticks
    cpu_before="$(awk '{print $14 + $15}' "/proc/$PID/stat")"
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" -s "$TMP/post.lua" "$url" >"$TMP/wrk.txt"
    cpu_after="$(awk '{print $14 + $15}' "/proc/$PID/stat")"
    ticks="$(getconf CLK_TCK)"
    local rps non2xx requests cpu_per
    rps="$(awk '/Requests\/sec/ {print $2}' "$TMP/wrk.txt")"
    non2xx="$(awk '/Non-2xx/ {print $NF}' "$TMP/wrk.txt")"
    requests="$(awk '/requests in/ {print $1}' "$TMP/wrk.txt")"
    cpu_per="$(awk -v c=$((cpu_after - cpu_before)) -v t="$ticks" -v n="$requests" \
        'BEGIN { if (n > 0) printf "%.0f", c / t / n * 1e6; else print "?" }')"
    echo "$label: $rps accepted/s (connections=$CONNECTIONS, duration=$DURATION, non-2xx=${non2xx:-0}," \
        "gateway CPU ${cpu_per} µs per accept, load average $(cut -d' ' -f1-3 /proc/loadavg))"
    sed -n '/Latency/p' "$TMP/wrk.txt" | sed "s/^/  $label /"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

if [ -z "${TG_BENCH_PG_ONLY:-}" ]; then
    printf 'store: {kind: sqlite}\n' >"$TMP/sqlite.yaml"
    run sqlite "$TMP/sqlite.yaml"
fi

if [ -n "${TG_BENCH_SQLITE_ONLY:-}" ]; then
    :
elif [ -n "${TG_POSTGRES_URL:-}" ]; then
    printf 'store: {kind: postgres, url: "%s", table_prefix: bench%s_}\n' "$TG_POSTGRES_URL" "$$" >"$TMP/pg.yaml"
    run postgres "$TMP/pg.yaml"
else
    # Re-run only the PostgreSQL half under a throwaway cluster.
    TG_PG_FSYNC=1 TG_BENCH_PG_ONLY=1 scripts/with-postgres.sh "$0" "$DURATION" "$CONNECTIONS" 2>/dev/null \
        | grep '^postgres\|^  postgres' || true
fi
