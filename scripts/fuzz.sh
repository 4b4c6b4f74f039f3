#!/usr/bin/env bash
# libFuzzer over the gateway's real connection pipeline and its codecs (STYLE.md habit 14): each input is one
# client connection served by GatewayServer.configureConnection (sniffer, HTTP/1.1 frontend or HTTP/2 frontend
# connection) on an NIOAsyncTestingChannel, with the demo runner in-process behind the real dispatcher; the
# answers are checked (every request answered or the connection closed, responses parse, every timeout ends the
# connection). The fuzzer is the separate package scripts/fuzz (entry: Sources/GatewayFuzzing,
# `fuzzGatewayInput`), built into scripts/fuzz/.build (gitignored). Seeds:
# corpus/seed-* (generated), corpus/nghttp-* and corpus/http1-* (captured from real clients by
# record-nghttp.sh and record-http1.sh), corpus/relay-* (hand-written bodies of the streaming relay's shapes for
# `RelayFuzzing`: a JSON body's open data URI, multipart bodies with file parts; the connection harness cannot
# reach the relay itself, which needs an http pool and a body of at least 1 MiB).
#
# Instrumentation: only our own code is built with libFuzzer's coverage and AddressSanitizer: the main
# package's targets (Swift modules, CTriggerProtos, CBase64, and CZlib's inline shims as compiled into
# WireCodecs) when TG_FUZZ_INSTRUMENT=1, which this script sets, and scripts/fuzz's own (the harness and
# protobuf-c built from source). The dependencies (swift-nio, NIOSSL's and swift-crypto's BoringSSL,
# AsyncHTTPClient, swift-certificates, jwt-kit, Yams, ...) are compiled plain, the system libnghttp2 and zlib
# as before. Trade-off: coverage feedback is our code's edges only (libFuzzer steers by what we parse and
# decide, not by NIO's or BoringSSL's internals), and ASan checks every access our code makes, including
# through pointers into NIO's buffers and the inlined @inlinable NIO code compiled into our modules; it does
# not check a dependency's own non-inlined loads and stores (a heap overflow inside NIO or BoringSSL itself,
# which their own fuzzing covers). What the runtime does is unchanged for all code: every heap block has its
# redzones and quarantine (malloc is ASan's), memcpy/memmove/strlen are checked where they are called, and
# the leak check sees every allocation. The gain: a fresh build no longer instruments the dependencies
# (-16 % CPU, see `regress` below).
#
#   scripts/fuzz.sh                 build only
#   scripts/fuzz.sh regress         build, then replay every file in FailCases/ and corpus/ once; non-zero on
#                                   any crash, sanitizer report, leak or broken connection invariant. Run it
#                                   before resolving work on a parser or a C wrapper; the test command replays
#                                   the same files without this build (FuzzConnectionTests; the HTTP/2 ones
#                                   under ASan through the engine, CorpusReplayTests). Measured on 2 cores at load 7 (2026-11-29): replay of 608
#                                   inputs 20 s (each a whole connection run to its close on a manual clock);
#                                   an incremental build ~1 min. The first build from an empty
#                                   scripts/fuzz/.build compiles the gateway's whole graph, our targets
#                                   instrumented: 613 CPU-s (728 when every dependency was instrumented too;
#                                   2026-12-01, bench/README.md "Branch citime"), ~5 min on 2 quiet cores.
#   scripts/fuzz.sh run [SECONDS]   fuzz for SECONDS (default 60) from corpus/ with gateway.dict; new inputs go
#                                   to .build/corpus-work/, crashers to FailCases/ (crash-<sha1>). Extra libFuzzer
#                                   flags via FUZZ_FLAGS, e.g. FUZZ_FLAGS="-fork=1 -ignore_crashes=1" to keep
#                                   going past known crashers. FUZZ_ONLY=relay fuzzes only the streaming relay's
#                                   parsers (RelayFuzzing: prefix scanner, multipart file observer), not the
#                                   whole connection: ~160 inputs/s at load 3 (2 cores, 2026-11-30), against
#                                   ~4/s for the whole harness at load 9. FUZZ_ONLY=http1 fuzzes only our
#                                   HTTP/1.1 request decoder against NIO's (HTTP1DecoderFuzzing: the same
#                                   requests read, what llhttp refuses refused); seeds corpus/h1dec-*.
#                                   FUZZ_ONLY=h1resp fuzzes only our HTTP/1.1 response decoder (the http
#                                   transport's, HTTP1ResponseDecoderFuzzing); seeds corpus/h1resp-*. `regress`
#                                   replays every corpus file through it too (fuzzGatewayDecoders).
#                                   FUZZ_ONLY=rest fuzzes only the REST bodies' decoders (RESTFuzzing: JSON
#                                   trigger bodies and their passthrough to http runners, multipart, the http
#                                   runner's answers and SSE); seeds corpus/rest-*.
#   scripts/fuzz.sh merge           fold .build/corpus-work/ into corpus/, keeping only inputs that add coverage.
#   scripts/fuzz.sh minimize FILE   minimize a crasher (-minimize_crash=1) into FailCases/<name>.min.
#   scripts/fuzz.sh seeds           rewrite the generated seeds corpus/seed-* (FuzzSeeds.swift).
set -euo pipefail
mode=${1:-build}
arg=${2:-}
# A file argument is relative to where the script was called from.
if [ "$mode" = minimize ] && [ -n "$arg" ]; then arg=$(realpath "$arg"); fi
self=$(realpath "$0")
cd "$(dirname "$0")/fuzz"

# FUZZ_SCRATCH: another scratch directory (e.g. a throwaway one to time a fresh build); .build by default.
SCRATCH=${FUZZ_SCRATCH:-.build}
BINARY=$SCRATCH/debug/FuzzGateway
# Swift's backtracer would catch the crash signal before libFuzzer writes the crasher.
export SWIFT_BACKTRACE=enable=no

# protobuf-c is compiled into the fuzzer from its own source so ASan and coverage reach the parser. The source
# is Debian's (the same 1.4.1 the system library is built from), fetched and checked here rather than
# committed.
PROTOBUF_C_URL=http://deb.debian.org/debian/pool/main/p/protobuf-c/protobuf-c_1.4.1.orig.tar.gz
PROTOBUF_C_SHA256=4cc4facd508172f3e0a4d3a8736225d472418aee35b4ad053384b137b220339f
fetch_protobuf_c() {
    local dir=Sources/CProtobufC
    [ -f "$dir/protobuf-c.c" ] && [ -f "$dir/protobuf-c.h" ] && return 0
    mkdir -p "$SCRATCH"
    local tarball="$SCRATCH/protobuf-c_1.4.1.orig.tar.gz"
    if ! echo "$PROTOBUF_C_SHA256  $tarball" | sha256sum -c --status 2>/dev/null; then
        curl -sSfL -o "$tarball" "$PROTOBUF_C_URL"
        echo "$PROTOBUF_C_SHA256  $tarball" | sha256sum -c --status || { echo "fuzz.sh: protobuf-c checksum mismatch" >&2; exit 1; }
    fi
    tar -xzf "$tarball" -C "$dir" --strip-components=2 protobuf-c-1.4.1/protobuf-c/protobuf-c.c protobuf-c-1.4.1/protobuf-c/protobuf-c.h
    tar -xzf "$tarball" -C "$dir" --strip-components=1 protobuf-c-1.4.1/LICENSE
}

build() {
    fetch_protobuf_c
    # Debug build: the sanitizer instrumentation matters more than optimisation, and it keeps preconditions.
    # The flags are in the manifests, on our targets only (see the header); TG_FUZZ_INSTRUMENT=1 turns them on
    # in the main package. ld.gold warns "Cannot export local symbol __asan_*" for every object; that is
    # harmless, so filtered.
    # SwiftPM keeps a path dependency's build plan (its list of source files) while the manifests are unchanged:
    # a source file added to the gateway since the last build would be missing from it, and the build fail (or,
    # before this check, a stale fuzzer be replayed). Dropping the plan makes SwiftPM list the sources again.
    rm -f "$SCRATCH/debug.yaml" "$SCRATCH/debug/description.json"
    # The build's status (pipefail), not grep's: a failed build must not leave an older fuzzer to be replayed.
    if ! TG_FUZZ_INSTRUMENT=1 swift build --scratch-path "$SCRATCH" --product FuzzGateway 2>&1 \
        | { grep -v -e "Cannot export local symbol" -e "^\[[0-9]*/[0-9]*\]" || true; }; then
        echo "fuzz.sh: build failed" >&2
        exit 1
    fi
    test -x "$BINARY" || { echo "fuzz.sh: build failed" >&2; exit 1; }
}

inputs() {
    find FailCases corpus -type f ! -name 'README*' ! -name '.gitkeep' | sort
}

case "$mode" in
build)
    build
    ;;
regress)
    build
    mapfile -t files < <(inputs)
    echo "fuzz.sh: replaying ${#files[@]} inputs"
    # Each file is run once as a single input; libFuzzer exits non-zero on the first failure.
    "$BINARY" -runs=1 "${files[@]}" > "$SCRATCH/regress.log" 2>&1 || {
        tail -60 "$SCRATCH/regress.log" >&2
        echo "fuzz.sh: regression (full log: scripts/fuzz/$SCRATCH/regress.log)" >&2
        exit 1
    }
    echo "fuzz.sh: ${#files[@]} inputs replayed, no failures"
    ;;
run)
    seconds=${arg:-60}
    build
    mkdir -p "$SCRATCH/corpus-work" FailCases
    "$BINARY" "$SCRATCH/corpus-work" corpus \
        -dict=gateway.dict -max_len=8192 -timeout=10 -max_total_time="$seconds" \
        -artifact_prefix=FailCases/ -print_final_stats=1 ${FUZZ_FLAGS:-}
    ;;
merge)
    build
    mkdir -p "$SCRATCH/corpus-work"
    "$BINARY" -merge=1 corpus "$SCRATCH/corpus-work"
    ;;
minimize)
    file=${arg:?usage: scripts/fuzz.sh minimize FILE}
    build
    "$BINARY" -minimize_crash=1 -runs=100000 -max_total_time=120 \
        -exact_artifact_path="FailCases/$(basename "$file").min" "$file"
    ;;
seeds)
    build
    rm -f corpus/seed-*
    "$BINARY" --write-seeds corpus
    ls corpus/seed-* | wc -l
    ;;
*)
    awk 'NR > 1 && !/^#/ { exit } NR > 1' "$self" >&2
    exit 2
    ;;
esac
