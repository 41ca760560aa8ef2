#!/usr/bin/env bash
# Installs the system programs the tests need, from Debian's packages, when missing:
# redis-server for the Redis back end (with openssl for its TLS test's certificates),
# PostgreSQL's server programs (initdb, pg_ctl, under /usr/lib/postgresql/*/bin) for the
# PostgreSQL back end, chromium for the dashboard's browser test, and wrk, the load generator of
# the HTTP benchmark (bench/http.py).
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "The tests need ${need[*]}; install them (apt-get install ${need[*]}) or run this as root." >&2
        exit 1
    fi
    SUDO="sudo"
fi
echo "Installing ${need[*]} from Debian's packages"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
