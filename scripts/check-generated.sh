#!/usr/bin/env bash
# Fails (exit 1) when the committed protobuf-c output and reflection descriptor set in Sources/CTriggerProtos are
# stale: regenerates into a temporary directory and diffs it against the committed tree. After grpc-swift-2
# dev/check-generated-code.sh, but diffing against a fresh tree rather than `git diff`, so it also works on
# uncommitted checkouts.
#
# Idempotent and read-only for the repository.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
committed="$root/Sources/CTriggerProtos"

fresh="$(mktemp -d)"
trap 'rm -rf "$fresh"' EXIT
"$root/scripts/regen-protos.sh" "$fresh/CTriggerProtos" >/dev/null

# Compare only generated files; hand-written ones (none today) may live beside them.
list() { (cd "$1" && find . \( -name '*.pb-c.c' -o -name '*.pb-c.h' -o -name '*.desc.c' -o -name '*.desc.h' \
    -o -name 'CTriggerProtos.h' \
    -o -name 'module.modulemap' \) -type f | LC_ALL=C sort); }

status=0
if ! diff <(list "$committed") <(list "$fresh/CTriggerProtos") >/dev/null; then
    echo "check-generated: the set of generated files differs:" >&2
    diff <(list "$committed") <(list "$fresh/CTriggerProtos") >&2 || true
    status=1
fi
while read -r f; do
    if [[ -f "$committed/$f" ]] && ! cmp -s "$committed/$f" "$fresh/CTriggerProtos/$f"; then
        echo "check-generated: stale: Sources/CTriggerProtos/${f#./}" >&2
        status=1
    fi
done < <(list "$fresh/CTriggerProtos")

if [[ $status -ne 0 ]]; then
    echo "check-generated: run scripts/regen-protos.sh and commit the result." >&2
else
    echo "check-generated: Sources/CTriggerProtos is up to date."
fi

# The OpenAPI document compiled into the gateway, from openapi/openapi.json.
openapi="Sources/GatewayServer/OpenAPIDocument+Generated.swift"
"$root/scripts/regen-openapi.sh" "$fresh/openapi.swift"
if ! cmp -s "$root/$openapi" "$fresh/openapi.swift"; then
    echo "check-generated: stale: $openapi; run scripts/regen-openapi.sh and commit the result." >&2
    status=1
else
    echo "check-generated: $openapi is up to date."
fi
exit $status
