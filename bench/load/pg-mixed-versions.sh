#!/usr/bin/env bash
# Two gateway versions on one PostgreSQL database and table prefix (a rolling upgrade): each accepts async
# triggers, the earlier one restarts while the later one runs (its start must not undo the later one's schema),
# and every accepted operation must end succeeded, run by either.
#
#   bench/load/pg-mixed-versions.sh OLD_BINARY NEW_BINARY [N=100]
#
# Starts the earlier gateway first (it makes the schema as it knows it), then the later one (which adds its own
# objects), posts N triggers to each, restarts the earlier one, posts N more to each, and waits (at most 60 s) for
# every row to finish. Prints the rows by state and by the instance that ran them (lease owner), and exits 1
# unless all 4N + 3 (with the three start-up checks) are succeeded. Only 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$#" -ge 2 ] || { echo "usage: $0 OLD_BINARY NEW_BINARY [N]" >&2; exit 2; }
OLD="$(realpath "$1")" NEW="$(realpath "$2")" N="${3:-100}"
if [ -z "${TG_POSTGRES_URL:-}" ]; then
    exec scripts/with-postgres.sh "$0" "$OLD" "$NEW" "$N"
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/tg-mixed.XXXXXX")"
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT
printf 'store: {kind: postgres, url: "%s", table_prefix: mixed_}\n' "$TG_POSTGRES_URL" >"$TMP/pg.yaml"

# Starts binary $1 on data dir $2; sets STARTED_PID and STARTED_URL (demo/echo's trigger-async).
start() {
    mkdir -p "$2"
    : >"$2.out"
    "$1" serve --listen 127.0.0.1:0 --data-dir "$2" --config "$TMP/pg.yaml" >"$2.out" 2>"$2.err" &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    local port=""
    for _ in $(seq 1 100); do
        port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$2.out")"
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$2.err" >&2; exit 1; }
    STARTED_URL="http://127.0.0.1:$port/v1beta/namespaces/demo/pipelines/echo/trigger-async"
    for _ in $(seq 1 50); do
        curl -sS -H 'content-type: application/json' -d '{"data":[{"variable":{}}]}' "$STARTED_URL" 2>/dev/null \
            | grep -q '"operations/' && return
        sleep 0.1
    done
    echo "$1 did not accept a trigger" >&2
    exit 1
}
post() {
    local url="$1" i
    for i in $(seq 1 "$N"); do
        curl -sS -o /dev/null -w '%{http_code}\n' -H 'content-type: application/json' \
            -d "{\"data\":[{\"variable\":{\"i\":\"$i\"}}]}" "$url"
    done | sort | uniq -c | sed "s|^|  $2: HTTP|"
}

start "$OLD" "$TMP/old"; old_pid=$STARTED_PID old_url=$STARTED_URL
start "$NEW" "$TMP/new"; new_url=$STARTED_URL
post "$old_url" earlier; post "$new_url" later
kill "$old_pid"; wait "$old_pid" 2>/dev/null || true
start "$OLD" "$TMP/old"; old_url=$STARTED_URL
post "$old_url" "earlier, restarted"; post "$new_url" later
expected=$((4 * N + 3))
for _ in $(seq 1 600); do
    [ "$(psql -Atc "SELECT count(*) FROM mixed_operations WHERE state = 'succeeded'")" -ge "$expected" ] && break
    sleep 0.1
done
psql -P pager=off -qc "SELECT state, count(*) FROM mixed_operations GROUP BY state ORDER BY state" \
    -c "SELECT left(lease_owner, 40) AS run_by, count(*) FROM mixed_operations GROUP BY 1 ORDER BY 1"
succeeded="$(psql -Atc "SELECT count(*) FROM mixed_operations WHERE state = 'succeeded'")"
total="$(psql -Atc "SELECT count(*) FROM mixed_operations")"
echo "succeeded $succeeded of $total (expected $expected)"
[ "$succeeded" -eq "$expected" ] && [ "$total" -eq "$expected" ]
