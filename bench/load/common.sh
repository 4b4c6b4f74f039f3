# Shared by the async accept scripts (async-accept.sh, pg-accept-profile.sh); sourced, not run. Sets BIN (the
# gateway: $TG_GATEWAY_BIN, or a release build), TMP (removed on exit, with the gateway stopped), $TMP/post.lua
# (wrk's trigger-async POST), and defines start_accepting_gateway. Only 127.0.0.1 is used.

if [ -n "${TG_GATEWAY_BIN:-}" ]; then
    BIN="$TG_GATEWAY_BIN"  # a binary built elsewhere (a before/after comparison in the same conditions)
else
    # BUILD=debug for a debug build; else the release build scripts/run makes (scripts/build-release).
    if [ "${BUILD:-release}" = release ]; then
        scripts/build-release --product trigger-gateway >/dev/null
        BIN="$(scripts/build-release --show-bin-path)/trigger-gateway"
    else
        swift build -c "$BUILD" --product trigger-gateway >/dev/null
        BIN="$(swift build -c "$BUILD" --show-bin-path)/trigger-gateway"
    fi
fi
TMP="$(mktemp -d "${TMPDIR:-/tmp}/tg-bench-async.XXXXXX")"
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

cat >"$TMP/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"data":[{"variable":{"prompt":"hello"}}]}'
LUA

# Starts the gateway with config $1 on a fresh data dir (PID: its process), waits for its port, and checks that
# one trigger-async is accepted (an operation, not an error). Sets URL to the trigger-async URL of demo/echo.
start_accepting_gateway() {
    local config="$1"
    rm -rf "$TMP/data"
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$TMP/data" --config "$config" >"$TMP/out.log" 2>"$TMP/err.log" &
    PID=$!
    local port=""
    for _ in $(seq 1 100); do
        port="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/out.log")"
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { cat "$TMP/err.log" >&2; exit 1; }
    URL="http://127.0.0.1:$port/v1beta/namespaces/demo/pipelines/echo/trigger-async"
    curl -sS -H 'content-type: application/json' -d '{"data":[{"variable":{}}]}' "$URL" | grep -q '"operations/' \
        || { echo "$(basename "$0"): the gateway on $config did not accept a trigger" >&2; exit 1; }
}
