#!/usr/bin/env bash
# PostgreSQL for the tests. The tests start private servers themselves
# (examples/support/pg_server.rs); this script only makes sure the server binaries exist.
#
#   scripts/postgres.sh install   installs Debian's `postgresql` where no
#                                 /usr/lib/postgresql/*/bin/postgres exists (idempotent)
set -euo pipefail

have_server() {
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

case "${1:-}" in
install)
    if have_server; then
        echo "postgres.sh: PostgreSQL server binaries present: $(compgen -G '/usr/lib/postgresql/*/bin/postgres' | sort -V | tail -n1)"
        exit 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "postgres.sh: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin;" \
            "install Debian's 'postgresql' package as root (apt-get install -y postgresql)" >&2
        exit 1
    fi
    echo "postgres.sh: installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y postgresql
    have_server || {
        echo "postgres.sh: 'postgresql' installed but no /usr/lib/postgresql/*/bin/postgres" >&2
        exit 1
    }
    ;;
*)
    echo "usage: $0 install" >&2
    exit 2
    ;;
esac
