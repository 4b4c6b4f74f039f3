#!/usr/bin/env bash
# Rolling upgrades across three gateway versions with a DML-only role (README "PostgreSQL roles"; review 16 F1):
# the owner starts each version in turn on one database, then each restarts as a role with DML and EXECUTE only.
# Every line must read "readyz async 200, an async trigger done": a version that changes a stored routine's body
# under its old name makes the other version's restart need ownership (503, "lacks a privilege").
#   scripts/with-postgres.sh bench/load/pg-upgrade-roles.sh OLD_BINARY MID_BINARY NEW_BINARY
# (2026-12-01: OLD e030be6, MID 4509262, whose `_complete` body change broke OLD's restart, NEW its fix.)
set -uo pipefail
OLD=$1 MID=$2 NEW=$3
OUT=$(mktemp -d "${TMPDIR:-/tmp}/pg-upgrade-roles.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
psql -v ON_ERROR_STOP=1 -qc "CREATE ROLE tgowner LOGIN" -c "CREATE ROLE gw LOGIN" \
  -c "GRANT USAGE, CREATE ON SCHEMA public TO tgowner" -c "GRANT USAGE ON SCHEMA public TO gw"
grant() {
  psql -qc "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO gw" \
    -c "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO gw" \
    -c "GRANT EXECUTE ON ALL PROCEDURES IN SCHEMA public TO gw"
}
run() { # BIN ROLE NAME PREFIX
  local bin=$1 role=$2 name=$3 prefix=$4 d="$OUT/$3" port="" code=none
  mkdir -p "$d/data"
  printf 'store: {kind: postgres, url: "postgres://%s@127.0.0.1:%s/postgres", table_prefix: %s}\n' \
    "$role" "$PGPORT" "$prefix" >"$d/c.yaml"
  "$bin" serve --listen 127.0.0.1:0 --data-dir "$d/data" --config "$d/c.yaml" >"$d/out" 2>"$d/err" &
  local pid=$!
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$d/out"); [ -n "$port" ] && break; sleep 0.1
  done
  for _ in $(seq 1 60); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz?component=async"); [ "$code" = 200 ] && break; sleep 0.2
  done
  local state=none
  if [ "$code" = 200 ]; then
    local op
    op=$(curl -sS -H 'content-type: application/json' -d '{"data":[{"variable":{"p":"x"}}]}' \
      "http://127.0.0.1:$port/v1beta/namespaces/demo/pipelines/echo/trigger-async" | python3 -c 'import json,sys; print(json.load(sys.stdin)["operation"]["name"])')
    for _ in $(seq 1 50); do
      state=$(curl -sS "http://127.0.0.1:$port/v1beta/$op" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("done" if d["operation"].get("done") else "pending")')
      [ "$state" = done ] && break; sleep 0.1
    done
  fi
  echo "== $name: $(basename "$bin") $(dirname "$bin" | xargs basename) as $role: readyz async $code, an async trigger $state"
  grep -ih -m2 "privilege\|42501\|must be owner" "$d/err" "$d/out" | cut -c1-300
  kill "$pid"; wait "$pid" 2>/dev/null
}
echo "### 1. e030be6 -> new (owner), then e030be6 and new restart as the DML-only role"
run "$OLD" tgowner 1a-old-owner u1_
run "$NEW" tgowner 1b-new-owner u1_; grant
run "$OLD" gw 1c-old-gw u1_
run "$NEW" gw 1d-new-gw u1_
run "$OLD" gw 1e-old-gw-again u1_
echo "### 2. e030be6 -> 4509262 -> new (owner), then 4509262 and new restart as the DML-only role"
run "$OLD" tgowner 2a-old-owner u2_
run "$MID" tgowner 2b-mid-owner u2_
run "$NEW" tgowner 2c-new-owner u2_; grant
run "$MID" gw 2d-mid-gw u2_
run "$NEW" gw 2e-new-gw u2_
psql -Atc "SELECT proname, pg_get_userbyid(proowner) FROM pg_proc WHERE proname LIKE 'u%_operations%' ORDER BY 1"
