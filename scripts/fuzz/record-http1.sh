#!/usr/bin/env bash
# Records what real HTTP/1.1 clients send on a fresh connection into corpus/http1-*: curl, and the two
# requests-based SDKs (abacusai, craft-ai-sdk; from .venv-abacus / .venv-craft, which `scripts/setup.sh --test`
# creates; skipped when absent). A listener that never answers keeps only the client's first request.
# Run by hand when the seeds should change; the recordings are committed. The sibling for HTTP/2 is
# record-nghttp.sh.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '{"data":[{"variable":{"prompt":"hello world"}}]}' > "$tmp/json-body"
printf 'hello\nworld\n' > "$tmp/file.txt"

# record NAME COMMAND...: runs COMMAND with the listener's base URL (http://127.0.0.1:PORT) appended as its last
# argument, or substituted for @URL@ where it appears.
record() {
    local name=$1
    shift
    python3 first-flight-listener.py "$tmp/port" "corpus/http1-$name" &
    local listener=$!
    while [ ! -s "$tmp/port" ]; do sleep 0.05; done
    local url="http://127.0.0.1:$(cat "$tmp/port")"
    local args=() substituted=0
    for a in "$@"; do
        if [[ $a == *@URL@* ]]; then args+=("${a//@URL@/$url}"); substituted=1; else args+=("$a"); fi
    done
    [ "$substituted" = 1 ] || args+=("$url")
    # The SDKs import pandas and friends first: allow them time to get as far as connecting.
    timeout 60 "${args[@]}" >/dev/null 2>&1 || true
    wait "$listener" || true
    rm -f "$tmp/port"
}

trigger=/v1beta/namespaces/demo/pipelines/echo/trigger
record curl-json curl -sS -H 'content-type: application/json' -H 'authorization: Bearer fuzz-token' \
    --data-binary @"$tmp/json-body" "@URL@$trigger"
record curl-multipart curl -sS -F 'variables[0].prompt=hello' -F "variables[0].file=@$tmp/file.txt" "@URL@$trigger"
record curl-sse curl -sS -N -H 'accept: text/event-stream' -H 'content-type: application/json' \
    --data-binary @"$tmp/json-body" "@URL@$trigger"
record curl-readiness curl -sS "@URL@/v1beta/__readiness"
record curl-abacus curl -sS "@URL@/api/v0/runPipeline?pipelineId=echo&deploymentToken=t"

if [ -x "$root/.venv-abacus/bin/python" ]; then
    record abacus-run-pipeline "$root/.venv-abacus/bin/python" -c '
import sys, abacusai
client = abacusai.ApiClient(api_key="fuzz-token", server=sys.argv[1], skip_version_check=True)
client.run_pipeline("echo", pipeline_variable_mappings=[{"name": "prompt", "variable_type": "STRING", "value": "hi"}])
'
fi
if [ -x "$root/.venv-craft/bin/python" ]; then
    record craft-trigger-endpoint "$root/.venv-craft/bin/python" -c '
import sys, craft_ai_sdk
sdk = craft_ai_sdk.CraftAiSdk(sdk_token="fuzz-token", environment_url=sys.argv[1], control_url=sys.argv[1])
sdk.trigger_endpoint("echo", endpoint_token="fuzz-token", inputs={"prompt": "hi"})
'
fi
# Keep-alive pipelining: three of curl's requests back to back on one connection (RFC 9112 §9.3.2).
cat corpus/http1-curl-json corpus/http1-curl-readiness corpus/http1-curl-sse > corpus/http1-pipelined-curl
ls -l corpus/http1-*
