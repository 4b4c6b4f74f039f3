#!/usr/bin/env bash
# Runs the built trigger-gateway and demo-runner (http and grpc transports) as an unprivileged user and
# drives REST (curl), gRPC (grpcurl), an http backend and a grpc backend through them, plus an async trigger
# (the SQLite store writes into a data dir that user owns), a SIGHUP reload, sd_notify to a notify socket root bound,
# the admin listener (its own port for /metrics and the probes, bound by the user), and TLS (the listener's, and a
# pool's client certificate for TLS to backends) with a key only that user can read.
#
# CI and sessions run as root, which hides permission bugs: a socket option that needs CAP_NET_ADMIN once
# made every accepted connection fail for anyone else. Usage: scripts/unprivileged-smoke.sh [BIN_DIR]
# (default: the debug build's products).
set -euo pipefail
cd "$(dirname "$0")/.."
bin_dir="${1:-$(swift build --show-bin-path)}"
user="${SMOKE_USER:-nobody}"
group="$(id -gn "$user")"
export PATH="$PWD/.venv/bin:$PATH"

work="$(mktemp -d /tmp/tg-unpriv.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"
# Copies: the checkout may live under a directory the unprivileged user cannot enter.
cp "$bin_dir/trigger-gateway" "$bin_dir/demo-runner" "$work/"
# The user's own state directory; serve creates the data dir inside it (with the mode it chooses).
mkdir "$work/state"
chown "$user:$group" "$work/state"

as_user=(setpriv --reuid="$user" --regid="$group" --clear-groups --inh-caps=-all)

# Starts "$@" as the user and waits for its "listening on HOST:PORT" line; sets started_pid, started_port.
start() {
    local log="$1"; shift
    # setpriv execs the command: $! is the server's own pid (signals below reach it, not a subshell).
    "${as_user[@]}" "$@" >"$log" 2>&1 &
    started_pid=$!
    pids+=("$started_pid")
    for _ in $(seq 1 400); do
        if grep -q "listening on" "$log" 2>/dev/null; then
            started_port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -1)
            return 0
        fi
        sleep 0.05
    done
    echo "unprivileged-smoke: $* did not start:" >&2; cat "$log" >&2; return 1
}

start "$work/http-runner.log" "$work/demo-runner" --listen 127.0.0.1:0 --transport http
http_port=$started_port
start "$work/grpc-runner.log" "$work/demo-runner" --listen 127.0.0.1:0 --transport grpc
grpc_port=$started_port
cat >"$work/gateway.yaml" <<YAML
pools:
  - {name: local, transport: inprocess}
  - {name: web, transport: http, endpoints: ["127.0.0.1:$http_port"]}
  - {name: rpc, transport: grpc, endpoints: ["127.0.0.1:$grpc_port"]}
routes:
  - {namespace: demo, pipeline: "*", pool: local}
  - {namespace: viahttp, pipeline: "*", pool: web}
  - {namespace: viagrpc, pipeline: "*", pool: rpc}
admin: {listen: "127.0.0.1:0", metrics_on_serving_port: false}
YAML
chmod 644 "$work/gateway.yaml"
# systemd's notify socket (Type=notify, sd_notify(3)) as the service manager binds it: by root, writable by all; the
# gateway, as the user, must reach it. Each datagram is appended to notify.log.
python3 - "$work/notify" "$work/notify.log" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o777)
with open(sys.argv[2], "a") as log:
    while True:
        log.write(s.recv(4096).decode() + "\n---\n")
        log.flush()
PY
pids+=($!)
for _ in $(seq 1 100); do [ -S "$work/notify" ] && break; sleep 0.05; done
start "$work/gateway.log" env NOTIFY_SOCKET="$work/notify" "$work/trigger-gateway" serve \
    --config "$work/gateway.yaml" --listen 127.0.0.1:0 --data-dir "$work/state/data"
port=$started_port
gateway_pid=$started_pid
base="http://127.0.0.1:$port/v1beta/namespaces"
# Printed before the ready line: `admin listener on HOST:PORT`.
admin_port=$(sed -n 's/^admin listener on [^ ]*:\([0-9]*\)$/\1/p' "$work/gateway.log" | head -1)

fail() { echo "unprivileged-smoke: FAILED: $*" >&2; echo "--- gateway log" >&2; cat "$work/gateway.log" >&2; exit 1; }
expect() { # expect NAME NEEDLE OUTPUT
    case "$3" in *"$2"*) echo "ok: $1";; *) fail "$1: expected \"$2\" in: $3";; esac
}

body='{"data":[{"variable":{"prompt":"hello"}}]}'
for ns in demo viahttp viagrpc; do
    out=$(curl -sS --max-time 10 -H 'content-type: application/json' -d "$body" "$base/$ns/pipelines/upper/trigger") \
        || fail "REST to $ns"
    expect "REST over HTTP/1.1 to $ns" '"HELLO"' "$out"
done
out=$(curl -sS --max-time 10 --http2-prior-knowledge -H 'content-type: application/json' -d "$body" \
    "$base/viagrpc/pipelines/upper/trigger") || fail "REST over h2c"
expect "REST over h2c to the grpc backend" '"HELLO"' "$out"
for ns in viahttp viagrpc; do
    out=$(grpcurl -plaintext -max-time 10 -import-path protos -import-path /usr/include \
        -proto pipeline/pipeline/v1beta/pipeline_public_service.proto \
        -d "{\"namespace_id\":\"$ns\",\"pipeline_id\":\"upper\",\"data\":[{\"variable\":{\"prompt\":\"hello\"}}]}" \
        "127.0.0.1:$port" pipeline.pipeline.v1beta.PipelinePublicService/TriggerNamespacePipeline 2>&1) \
        || fail "gRPC to $ns: $out"
    expect "gRPC (grpcurl) to $ns" 'HELLO' "$out"
done
out=$(curl -sS --max-time 10 -H 'content-type: application/json' -d "$body" "$base/viahttp/pipelines/upper/trigger-async")
expect "async accepted into a store in the user's data dir" '"operations/' "$out"
op=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["operation"]["name"])')
out=$(curl -sS --max-time 15 "http://127.0.0.1:$port/v1beta/$op?wait=10s")
expect "async operation finished" 'HELLO' "$out"

# The admin listener, bound by the user: /metrics and the probes there; /metrics off the serving port (404).
[ -n "$admin_port" ] || fail "no 'admin listener on' line"
out=$(curl -sS --max-time 10 "http://127.0.0.1:$admin_port/readyz") || fail "admin /readyz"
expect "admin listener: /readyz" '"status":"SERVING"' "$out"
out=$(curl -sS --max-time 10 "http://127.0.0.1:$admin_port/metrics") || fail "admin /metrics"
expect "admin listener: /metrics" 'trigger_gateway_requests_total' "$out"
out=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics")
expect "metrics_on_serving_port: false: the serving port's /metrics is 404" '404' "$out"
out=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$admin_port/openapi.json")
expect "admin listener: any other path is 404" '404' "$out"

# The Craft AI surface: its access-token key is generated into the user's data dir (0600) and signs the JWT.
out=$(curl -sS --max-time 10 -H 'content-type: application/json' -d '{"refresh_token":"sdk"}' \
    "http://127.0.0.1:$port/api/v1/auth/refresh")
expect "Craft AI access token issued" '"access_token"' "$out"
jwt=$(printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
out=$(curl -sS --max-time 10 -H "authorization: Bearer $jwt" "http://127.0.0.1:$port/api/v1/pipelines/blob-info")
expect "Craft AI pipeline described with that token" '"data_type":"file"' "$out"
key_mode=$(stat -c '%a %U' "$work/state/data/craft-jwt.key") || fail "no craft-jwt.key in the data dir"
expect "Craft AI key is the user's, mode 600" "600 $user" "$key_mode"

# The stored async inputs are the user's alone: the data dir serve created 0700, the store's files and the
# instance id 0600.
dir_mode=$(stat -c '%a %U' "$work/state/data") || fail "no data dir"
expect "the data dir is the user's, mode 700" "700 $user" "$dir_mode"
for f in operations.sqlite operations.sqlite-wal operations.sqlite-shm instance-id; do
    f_mode=$(stat -c '%a %U' "$work/state/data/$f") || fail "no $f in the data dir"
    expect "$f is the user's, mode 600" "600 $user" "$f_mode"
done

# The data dir is locked (flock on a file the user creates there): a second serve on it refuses, naming the holder.
if out=$("${as_user[@]}" "$work/trigger-gateway" serve --listen 127.0.0.1:0 --data-dir "$work/state/data" 2>&1); then
    fail "a second serve on the same data dir started: $out"
fi
expect "a second serve on the data dir refuses, naming the holder" "in use by another trigger-gateway (pid $gateway_pid)" "$out"
lock_owner=$(stat -c '%U' "$work/state/data/trigger-gateway.lock") || fail "no lock file in the data dir"
expect "the data dir's lock file is the user's" "$user" "$lock_owner"

# A privileged port as the user: one line saying how to fix it (review 9, finding 10), not a raw socket error.
if [ "$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start 2>/dev/null || echo 1024)" -gt 80 ]; then
    if out=$(timeout 20 "${as_user[@]}" "$work/trigger-gateway" serve --listen 127.0.0.1:80 \
        --data-dir "$work/state/data80" 2>&1); then
        fail "serve on port 80 as the user started: $out"
    fi
    expect "a privileged port says how to fix it" \
        "cannot listen on 127.0.0.1:80: permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE" "$out"
    case "$out" in *"bind(descriptor"*) fail "a syscall signature in the listen error: $out";; esac
    # The admin listener's the same way, naming its key.
    if out=$(timeout 20 "${as_user[@]}" "$work/trigger-gateway" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:81 \
        --data-dir "$work/state/data81" 2>&1); then
        fail "serve with the admin listener on port 81 as the user started: $out"
    fi
    expect "a privileged admin port says how to fix it" \
        "cannot listen on 127.0.0.1:81 (admin.listen): permission denied: ports below 1024 need root" "$out"
fi

# SIGHUP reloads as the user too (the file is readable, the signal is the user's own process).
sed -i 's/namespace: viagrpc/namespace: viarpc/' "$work/gateway.yaml"
kill -HUP "$gateway_pid"
for _ in $(seq 1 100); do grep -q "config reloaded" "$work/gateway.log" && break; sleep 0.05; done
for _ in $(seq 1 100); do grep -q "STATUS=configuration reloaded" "$work/notify.log" 2>/dev/null && break; sleep 0.05; done
expect "sd_notify as the user: ready, then reloading and ready again" \
    "READY=1
STATUS=listening on 127.0.0.1:$port
MAINPID=$gateway_pid
---
RELOADING=1" "$(cat "$work/notify.log" 2>/dev/null)"
expect "sd_notify: the reload's end" "STATUS=configuration reloaded" "$(cat "$work/notify.log")"
out=$(curl -sS --max-time 10 -H 'content-type: application/json' -d "$body" "$base/viarpc/pipelines/upper/trigger")
expect "a route added by SIGHUP answers" '"HELLO"' "$out"

# TLS as the user: the private key is readable by the service user alone (0600, its own), as in production.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$work/tls.key" -out "$work/tls.pem" 2>/dev/null
chown "$user:$group" "$work/tls.key"
chmod 600 "$work/tls.key"
chmod 644 "$work/tls.pem"
mkdir "$work/tlsdata"
chown "$user:$group" "$work/tlsdata"
# The same key as a client certificate for TLS to backends: the pool's files are loaded as the user too.
cat >"$work/tls.yaml" <<YAML
tls: {cert_file: $work/tls.pem, key_file: $work/tls.key}
pools:
  - {name: demo, transport: inprocess}
  - name: tlsrunners
    transport: http
    endpoints: ["https://127.0.0.1:9"]
    tls: {ca_file: $work/tls.pem, cert_file: $work/tls.pem, key_file: $work/tls.key}
routes:
  - {namespace: demo, pipeline: "*", pool: demo}
  - {namespace: tlsrunners, pipeline: "*", pool: tlsrunners}
YAML
chmod 644 "$work/tls.yaml"
out=$("${as_user[@]}" "$work/trigger-gateway" check-config "$work/tls.yaml" 2>&1) || fail "check-config as the user: $out"
expect "check-config as the user reads the listener's and a pool's TLS key (0600)" ": ok (" "$out"
start "$work/tls.log" "$work/trigger-gateway" serve --config "$work/tls.yaml" --listen 127.0.0.1:0 --data-dir "$work/tlsdata"
tls_pid=$started_pid
out=$(curl -sS --max-time 10 --cacert "$work/tls.pem" --http2 -H 'content-type: application/json' -d "$body" \
    "https://127.0.0.1:$started_port/v1beta/namespaces/demo/pipelines/upper/trigger") || fail "REST over TLS"
expect "REST over TLS (h2 by ALPN), key readable by the user only" '"HELLO"' "$out"
kill -TERM "$tls_pid"
wait "$tls_pid" || fail "TLS gateway exited with $?"

# A data dir the user owns whose SQLite write-ahead log root left behind (a run as root that crashed): the start
# names that file and why (operator review 58, F5: SQLite said only "unable to open database file" of the database).
mkdir -p "$work/walstate/data"
: > "$work/walstate/data/operations.sqlite-wal"
chmod 600 "$work/walstate/data/operations.sqlite-wal"
chown -R "$user:$group" "$work/walstate"
chown root:root "$work/walstate/data/operations.sqlite-wal"
chmod 700 "$work/walstate/data"
out=$("${as_user[@]}" "$work/trigger-gateway" serve --listen 127.0.0.1:0 --data-dir "$work/walstate/data" 2>&1) \
    && fail "serve started with a write-ahead log it cannot write: $out"
expect "a root-owned write-ahead log is named at start" "operations.sqlite-wal is not writable: Permission denied" "$out"

kill -TERM "$gateway_pid"
wait "$gateway_pid" || fail "gateway exited with $?"
grep -q "cannot set up an accepted connection" "$work/gateway.log" && fail "accept set-up failures logged"
echo "unprivileged-smoke: all passed as $user"
