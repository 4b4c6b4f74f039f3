#!/usr/bin/env bash
# Structural checks the compiler does not make: each C module is imported by exactly one Swift module, every
# target imports what it declares and declares what it imports (scripts/check-dependencies.py), and the code
# is formatted (swift format lint --strict).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
check_owner() {
    local cmodule=$1 owner=$2
    local offenders
    offenders=$(grep -rlE "^(@_implementationOnly |package |public |internal )?import $cmodule\$" Sources Tests \
        | grep -v "^Sources/$owner/" || true)
    if [ -n "$offenders" ]; then
        echo "lint: $cmodule may only be imported by $owner, found in:" >&2
        echo "$offenders" >&2
        fail=1
    fi
}
check_owner CNghttp2 HTTP2Engine
check_owner CTriggerProtos ProtoCodec
check_owner CZlib WireCodecs
check_owner CBase64 TriggerModel
python3 scripts/check-dependencies.py || fail=1
# Formatting: swift format (the toolchain's) with the project's .swift-format (NIO's style: 4 spaces, 120
# columns). Fix with `swift format format -i -r Sources Tests bench/micro/Sources/GatewayMicro scripts/fuzz/Sources`.
swift format lint --strict -r Sources Tests bench/micro/Sources/GatewayMicro scripts/fuzz/Sources || fail=1
exit $fail
