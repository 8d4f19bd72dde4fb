#!/usr/bin/env bash
# Print the directory holding PostgreSQL's server programs (initdb, pg_ctl), installing Debian's
# postgresql package first if none is found. The integration tests run their PostgreSQL cases
# on a throwaway cluster in a temporary directory on a loopback port; they start and stop it
# themselves. Progress goes to stderr; stdout is only the directory.
set -euo pipefail

find_bin() {
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    return 1
}

if ! find_bin; then
    echo "postgres-bin: installing Debian's postgresql package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    find_bin || { echo "postgres-bin: initdb not found after installing postgresql" >&2; exit 1; }
fi
