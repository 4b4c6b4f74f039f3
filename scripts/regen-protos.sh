#!/usr/bin/env bash
# Regenerates the committed protobuf-c sources of the CTriggerProtos target from protos/.
#
#   scripts/regen-protos.sh            # writes into Sources/CTriggerProtos
#   scripts/regen-protos.sh OUT_DIR    # writes the same tree into OUT_DIR (used by check-generated.sh)
#
# Layout (SwiftPM C target): `*.pb-c.c` under Sources/CTriggerProtos/<proto dir>/, `*.pb-c.h` under
# Sources/CTriggerProtos/include/<proto dir>/. The generated files include each other as
# "google/protobuf/struct.pb-c.h", which resolves because SwiftPM puts include/ on the header path.
# include/ also holds the umbrella header CTriggerProtos.h and a custom module.modulemap: SwiftPM refuses an
# umbrella header that sits beside subdirectories (include/google/...) unless the module map is ours.
#
# Server reflection: the FileDescriptorSet of the public services (`public_services` below, with every file they
# import; `protoc --descriptor_set_out --include_imports`) is written as C bytes into public_services.desc.c,
# with include/public_services.desc.h declaring its accessor. ProtoCodec's GRPCReflection serves it.
#
# Idempotent: the output tree is replaced wholesale, and protoc-c and protoc output is deterministic.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/Sources/CTriggerProtos}"
protos="$root/protos"
system_include="${PROTOBUF_INCLUDE:-/usr/include}"

command -v protoc-c >/dev/null || { echo "regen-protos: protoc-c not found (apt install protobuf-c-compiler)" >&2; exit 1; }
[[ -f "$system_include/google/protobuf/struct.proto" ]] \
    || { echo "regen-protos: $system_include/google/protobuf/struct.proto not found (apt install libprotobuf-dev)" >&2; exit 1; }

# Well-known types our protos import; generated from the system copy so they link with the rest. descriptor.proto
# is how GRPCReflection reads the descriptor set; timestamp.proto is a PipelineRun's times.
well_known=(
    google/protobuf/any.proto google/protobuf/struct.proto google/protobuf/descriptor.proto
    google/protobuf/timestamp.proto
)

# The services the gateway answers on its gRPC frontend: reflection advertises them, and GatewayServerTests
# (DiscoveryConsistencyTests) checks that GRPCCall.method(path:) dispatches each of their methods. Not
# trigger/runner: that is the backends' protocol.
public_services=(
    core/mgmt/v1beta/mgmt_public_service.proto
    grpc/health/v1/health.proto
    grpc/reflection/v1/reflection.proto
    grpc/reflection/v1alpha/reflection.proto
    pipeline/pipeline/v1beta/pipeline_public_service.proto
    pipeline/v1beta/pipeline_public_service.proto
    vdp/pipeline/v1beta/pipeline_public_service.proto
)
command -v protoc >/dev/null || { echo "regen-protos: protoc not found (apt install protobuf-compiler)" >&2; exit 1; }

mapfile -t ours < <(cd "$protos" && find . -name '*.proto' | sed 's|^\./||' | LC_ALL=C sort)
[[ ${#ours[@]} -gt 0 ]] || { echo "regen-protos: no .proto files under $protos" >&2; exit 1; }

gen="$(mktemp -d)"
trap 'rm -rf "$gen"' EXIT

# protobuf-c gives a `string` field as a NUL-terminated `char *`: it packs it with strlen and the decoders read it
# with `String(cString:)`, so a NUL cut the string ("a\u0000b" reached a grpc runner as "a") and there is no length
# to check UTF-8 against. The fields that carry a client's or a runner's data are generated as `bytes`
# (`ProtobufCBinaryData`, a length and a pointer) from patched copies, which protoc-c reads before protos/ and the
# system's copy: `google.protobuf.Value.string_value` and `Struct`'s map keys (the map as the repeated entry message
# protoc makes of it, which a map key cannot be `bytes` otherwise), and the runner protocol's `Value.string_value`
# and `Entry.key`. `string` and `bytes` have one wire form, so peers see no change; the published protos and the
# reflection descriptor set below keep `string`. The decoders check UTF-8 where the direction needs it
# (`WireDepthGuard`, `StructCodec`, `RunnerValueCodec`).
patched="$gen/patched"
mkdir -p "$patched/google/protobuf" "$patched/trigger/runner/v1"
# patch FROM TO SED-SCRIPT EXPECTED: TO is FROM edited by SED-SCRIPT; it must change exactly EXPECTED lines.
patch_proto() {
    sed -E "$3" "$1" >"$2"
    local changed
    changed=$(diff "$1" "$2" | grep -c '^>' || true)
    [[ "$changed" == "$4" ]] || { echo "regen-protos: patching $1 changed $changed lines, not $4" >&2; exit 1; }
}
patch_proto "$system_include/google/protobuf/struct.proto" "$patched/google/protobuf/struct.proto" \
    's/^( *)map<string, Value> fields = 1;/\1repeated FieldsEntry fields = 1; message FieldsEntry { bytes key = 1; Value value = 2; }/; s/^( *)string string_value = 3;/\1bytes string_value = 3;/' 2
patch_proto "$protos/trigger/runner/v1/runner.proto" "$patched/trigger/runner/v1/runner.proto" \
    's/^( *)string string_value = 4;/\1bytes string_value = 4;/; /^message Entry \{/,/^\}/ s/^( *)string key = 1;/\1bytes key = 1;/' 2
# From an empty directory, so that every input is a path under -I (the patched copies shadow the originals).
(cd "$patched/.." && protoc-c -I "$patched" -I "$protos" -I "$system_include" --c_out="$gen" "${ours[@]}" "${well_known[@]}")
protoc -I "$protos" -I "$system_include" --include_imports --descriptor_set_out="$gen/public_services.pb" \
    "${public_services[@]}"

# Remove only what this script generated before (leaving the umbrella header and module map alone), so files
# of a deleted .proto do not linger.
mkdir -p "$out/include"
find "$out" \( -name '*.pb-c.c' -o -name '*.pb-c.h' -o -name '*.desc.c' -o -name '*.desc.h' \) -type f -delete
find "$out" -mindepth 1 -type d -empty -delete
mkdir -p "$out/include"

(
    cd "$gen"
    find . -name '*.pb-c.c' | LC_ALL=C sort | while read -r f; do
        mkdir -p "$out/$(dirname "$f")"
        cp "$f" "$out/$f"
    done
    find . -name '*.pb-c.h' | LC_ALL=C sort | while read -r f; do
        mkdir -p "$out/include/$(dirname "$f")"
        cp "$f" "$out/include/$f"
    done
)

# The descriptor set as a C array (od is in coreutils; xxd is not always installed).
{
    echo "// Generated by scripts/regen-protos.sh. DO NOT EDIT."
    echo "// A google.protobuf.FileDescriptorSet: the files of public_services in regen-protos.sh and their imports."
    echo '#include "public_services.desc.h"'
    echo
    echo "static const unsigned char bytes[] = {"
    od -An -v -tx1 "$gen/public_services.pb" | sed -E 's/ ([0-9a-f]{2})/0x\1, /g; s/ +$//; s/^/    /'
    echo "};"
    echo
    echo "const unsigned char *trigger_public_descriptor_set(size_t *size) {"
    echo "    *size = sizeof(bytes);"
    echo "    return bytes;"
    echo "}"
} >"$out/public_services.desc.c"
cat >"$out/include/public_services.desc.h" <<'HEADER'
// Generated by scripts/regen-protos.sh. DO NOT EDIT.
#pragma once
#include <stddef.h>

/// The serialized google.protobuf.FileDescriptorSet of the gateway's public gRPC services and every file they
/// import (protoc --include_imports order: each file after its dependencies). Static storage; `*size` is set
/// to its length in bytes.
const unsigned char *trigger_public_descriptor_set(size_t *size);
HEADER

# The umbrella header: every generated header, in a stable order.
{
    echo "// Generated by scripts/regen-protos.sh. DO NOT EDIT."
    echo "// Umbrella header of CTriggerProtos: the protobuf-c code for protos/ and the well-known types."
    echo "// Imported only by the ProtoCodec module."
    echo "#pragma once"
    echo
    echo "#include <protobuf-c/protobuf-c.h>"
    (cd "$out/include" && find . \( -name '*.pb-c.h' -o -name '*.desc.h' \) | sed 's|^\./||' | LC_ALL=C sort) | while read -r h; do
        echo "#include \"$h\""
    done
} >"$out/include/CTriggerProtos.h"

cat >"$out/include/module.modulemap" <<'MAP'
// Generated by scripts/regen-protos.sh. DO NOT EDIT.
// A custom module map, because SwiftPM rejects an umbrella header beside subdirectories of include/.
module CTriggerProtos {
    header "CTriggerProtos.h"
    link "protobuf-c"
    export *
}
MAP
