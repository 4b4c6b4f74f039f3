#!/usr/bin/env bash
# Records what `nghttp` (nghttp2-client) sends on a fresh h2c connection into corpus/nghttp-*: a listener
# that never answers keeps only the client's first flight (preface, SETTINGS, PRIORITY frames, requests).
# Run by hand when the seeds should change; the recordings are committed.
set -euo pipefail
cd "$(dirname "$0")"
sdk_hex=0a036e733112057069706531221b0a190a170a0670726f6d7074120d1a0b68656c6c6f20776f726c64
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The Instill SDK's TriggerNamespacePipelineRequest, gRPC-framed (flag 0, 4-byte big-endian length).
python3 -c "import sys; m=bytes.fromhex('$sdk_hex'); sys.stdout.buffer.write(b'\0'+len(m).to_bytes(4,'big')+m)" \
    > "$tmp/grpc-body"
printf '{"data":[{"variable":{"prompt":"hello world"}}]}' > "$tmp/json-body"

record() { # name, nghttp args...
    local name=$1
    shift
    python3 first-flight-listener.py "$tmp/port" "corpus/nghttp-$name" &
    local listener=$!
    while [ ! -s "$tmp/port" ]; do sleep 0.05; done
    timeout 3 nghttp "$@" "http://127.0.0.1:$(cat "$tmp/port")" >/dev/null 2>&1 || true
    wait "$listener" || true
    rm -f "$tmp/port"
}

service=/pipeline.pipeline.v1beta.PipelinePublicService
record grpc-trigger -t 1 -H ':method: POST' -H 'content-type: application/grpc' -H 'te: trailers' \
    -H 'grpc-timeout: 5S' -d "$tmp/grpc-body" -H ":path: $service/TriggerNamespacePipeline"
record rest-json -t 1 -d "$tmp/json-body" -H 'content-type: application/json' \
    -H ':path: /v1beta/namespaces/demo/pipelines/echo/trigger'
record rest-get -t 1 -H ':path: /v1beta/operations/abc'
ls -l corpus/nghttp-*
