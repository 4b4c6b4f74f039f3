#!/usr/bin/env bash
# Runs the test suite under a sanitizer (STYLE.md "scripts/"), each in its own scratch directory so the normal
# .build stays untouched and the instrumented objects are reused between runs.
#
#   scripts/sanitize.sh [address] [swift test args...]   AddressSanitizer (+ leak check), scratch .build-asan
#   scripts/sanitize.sh thread [swift test args...]      ThreadSanitizer, scratch .build-tsan
#   scripts/sanitize.sh address --core [args...]          only scripts/asan-core (engine, codecs; scripts/test runs it)
#   scripts/sanitize.sh address --stores [args...]        only scripts/asan-stores (SQLiteHandle, the SQLite store
#                                                         and their suites; by hand, see below)
#
# e.g. `scripts/sanitize.sh address --filter HTTP2EngineTests`. The build always covers every test target
# (`--build-tests`); the arguments only narrow what runs.
#
# Measured on the 2-core dev machine (shared with other builds), with a trimmed manifest holding only
# HTTP2EngineTests + ProtoCodecTests (the rest of main did not compile yet):
#   address: first build 274 s (swift-nio and every dependency instrumented), no-op rebuild ~5 s,
#            ProtoCodecTests 7 s, HTTP2EngineTests 3 s (+ the leak report);
#   thread:  first build 145 s, both suites 9 s.
# The full suite adds the e2e tests' run time (sockets, subprocesses), roughly 2-3x slower than uninstrumented.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=address
case "${1:-}" in
address | thread)
    mode=$1
    shift
    ;;
esac
case "$mode" in
address) scratch=.build-asan ;;
thread) scratch=.build-tsan ;;
esac
# --core: only scripts/asan-core (the HTTP/2 engine, protobuf-c codec, zlib, wire codecs, model and their
# suites; what scripts/test runs under ASan), not the whole gateway.
# --stores: only scripts/asan-stores (SQLiteHandle's sqlite3 connection and statement cache, the SQLite store, the
# group commit, and the SQLite half of the store contract). Not in scripts/test: its first build instruments
# swift-crypto's BoringSSL and SQLite's amalgamation, far more than CI's time allows (bench/README.md, "Branch
# streamretry"); run it by hand after a change to SQLiteHandle or the SQLite store.
where=(--scratch-path "$scratch")
case "${1:-}" in
--core | --stores)
    where=(--package-path "scripts/asan-${1#--}")  # its own .build: nothing there is built without the sanitizer
    shift
    ;;
esac

# Let the sanitizer print its report; Swift's backtracer would otherwise take the signal first.
export SWIFT_BACKTRACE=enable=no
# TSan's default is to report and carry on; exit non-zero on the first race instead, like ASan.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
# Leaks that belong to the toolchain, not to us: XCTest's harness objects (reported even for an empty XCTest
# run) and the weak-reference side table Foundation's Process.run leaves behind (tests that run protoc).
suppressions=$(mktemp)
trap 'rm -f "$suppressions"' EXIT
# Also values made once for a `static let` (swift_once): they live as long as the process, by design.
printf '%s\n' 'leak:libXCTest.so' 'leak:s10Foundation7ProcessC3run' 'leak:threading_impl::once_slow' > "$suppressions"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$suppressions:print_suppressions=0}

start=$SECONDS
swift build --build-tests --sanitize="$mode" "${where[@]}"
echo "sanitize.sh: $mode build took $((SECONDS - start)) s"
start=$SECONDS
swift test --skip-build --sanitize="$mode" "${where[@]}" "$@"
echo "sanitize.sh: $mode tests took $((SECONDS - start)) s"
