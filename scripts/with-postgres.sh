#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL cluster on 127.0.0.1, then stops and deletes the cluster
# (always: on success, failure or interrupt).
#
#   scripts/with-postgres.sh swift test --filter OperationStoreTests
#
# The command sees TG_POSTGRES_URL=postgres://postgres@127.0.0.1:<port>/postgres (trust auth, loopback
# only) plus PGHOST/PGPORT/PGUSER/PGDATABASE for psql. As root, the cluster runs as the `postgres` OS user
# (PostgreSQL refuses to run as root). fsync is off: the cluster is for tests and dies with the command;
# TG_PG_FSYNC=1 keeps it on (fsync and synchronous_commit as in production), for benchmarks of durable commits.
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

find_bin() {
    local name="$1" dir
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/$name" ]; then echo "$dir/$name"; return; fi
    done
    echo "with-postgres: $name not found (install postgresql, see scripts/setup.sh)" >&2
    exit 1
}
INITDB="$(find_bin initdb)"
PG_CTL="$(find_bin pg_ctl)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/tg-postgres.XXXXXX")"
RUN_AS=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$TMP"
    RUN_AS=(runuser -u postgres --)
fi

cleanup() {
    local status=$?
    if [ -f "$TMP/data/postmaster.pid" ]; then
        "${RUN_AS[@]}" "$PG_CTL" stop -D "$TMP/data" -m immediate -w >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${RUN_AS[@]}" "$INITDB" -D "$TMP/data" -U postgres --auth=trust -E UTF8 --no-sync >"$TMP/initdb.log" 2>&1 || {
    cat "$TMP/initdb.log" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

fsync_flag="-F"
[ "${TG_PG_FSYNC:-}" = 1 ] && fsync_flag="-c fsync=on -c synchronous_commit=on"
# A port found free can be taken before the server binds it; try a few.
started=0
for _ in 1 2 3 4 5; do
    PORT="$(free_port)"
    if "${RUN_AS[@]}" "$PG_CTL" start -D "$TMP/data" -w -t 30 -l "$TMP/server.log" \
        -o "-h 127.0.0.1 -p $PORT -k $TMP $fsync_flag -c max_connections=200" >/dev/null 2>&1; then
        started=1
        break
    fi
done
if [ "$started" -ne 1 ]; then
    echo "with-postgres: the server did not start; its log:" >&2
    cat "$TMP/server.log" >&2 || true
    exit 1
fi

export TG_POSTGRES_URL="postgres://postgres@127.0.0.1:$PORT/postgres"
export PGHOST=127.0.0.1 PGPORT="$PORT" PGUSER=postgres PGDATABASE=postgres
echo "with-postgres: PostgreSQL on 127.0.0.1:$PORT ($TMP)" >&2

set +e
"$@"
status=$?
set -e
exit "$status"
