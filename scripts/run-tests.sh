#!/usr/bin/env bash
# Runs the test suite against SQLite and a real PostgreSQL.
#
# PostgreSQL: LEDGER_TEST_POSTGRES_URL if set; else the server on 127.0.0.1:5432 when it accepts
# connections; else a throwaway cluster started here (initdb + pg_ctl, removed on exit); else the
# PostgreSQL tests are skipped locally with the reason, and fail in CI (CI=true).
# pytest's "no tests collected" (exit 5) is a failure here, never a pass.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
cleanup() { :; }
trap 'cleanup' EXIT

pg_ready() {
    "$BIN/python" - "$1" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PY
}

start_throwaway_cluster() {
    local initdb pgctl dir port=55432 runas=()
    initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1)
    [ -n "${initdb:-}" ] || initdb=$(command -v initdb || true)
    [ -n "${initdb:-}" ] || return 1
    pgctl="$(dirname "$initdb")/pg_ctl"
    dir=$(mktemp -d /tmp/ledger-etl-pg.XXXXXX)
    if [ "$(id -u)" = "0" ]; then
        # initdb refuses to run as root: use the postgres account when there is one.
        id postgres >/dev/null 2>&1 || return 1
        chown postgres "$dir"
        runas=(runuser -u postgres --)
    fi
    "${runas[@]}" "$initdb" -D "$dir/data" -U postgres --auth=trust >"$dir/initdb.log" 2>&1 || return 1
    "${runas[@]}" "$pgctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null || return 1
    cleanup() { "${runas[@]}" "$pgctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$dir"; }
    export LEDGER_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
    echo "run-tests: started a throwaway PostgreSQL cluster on port $port" >&2
}

if [ -z "${LEDGER_TEST_POSTGRES_URL:-}" ]; then
    if pg_ready "postgresql://postgres@127.0.0.1:5432/test"; then
        export LEDGER_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:5432/test"
    elif ! start_throwaway_cluster; then
        echo "run-tests: no PostgreSQL found. Install it (Debian/Ubuntu: apt-get install postgresql)" \
             "or set LEDGER_TEST_POSTGRES_URL; PostgreSQL tests will be skipped (and fail in CI)." >&2
    fi
fi

# LibreOffice renders statement.xlsx as a person would print it; its tests skip locally without
# it and fail in CI. Install it when we can (root with apt-get), quietly.
if ! command -v soffice >/dev/null 2>&1 && ! command -v libreoffice >/dev/null 2>&1 \
        && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "run-tests: installing LibreOffice Calc (libreoffice-calc-nogui) for the XLSX print tests" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends libreoffice-calc-nogui; } >/dev/null 2>&1 \
        || echo "run-tests: could not install LibreOffice; its tests skip here and fail in CI" >&2
fi

# The read service's browser tests drive Debian's chromium through Playwright (never a downloaded
# browser build); they skip locally without it and fail in CI. Install it when we can.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "run-tests: installing chromium for the read service's browser tests" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends chromium; } >/dev/null 2>&1 \
        || echo "run-tests: could not install chromium; browser tests skip here and fail in CI" >&2
fi
"$BIN/python" -c 'import playwright' 2>/dev/null \
    || "$BIN/python" -m pip install --quiet 'playwright>=1.45' >/dev/null 2>&1 \
    || echo "run-tests: could not install playwright; browser tests skip here and fail in CI" >&2

# Slow cases (marked `slow`) run in CI and with RUN_SLOW=1; locally they are skipped by default
# so the suite stays within about ten minutes.
args=("$@")
if [ "${CI:-}" != "true" ] && [ "${RUN_SLOW:-0}" != "1" ]; then
    args=(-m "not slow" "${args[@]}")
    echo "run-tests: skipping tests marked slow (they run in CI; RUN_SLOW=1 runs them here)" >&2
fi

# One pytest worker per core (pytest-xdist): every test has its own database file or PostgreSQL
# schema, simulator port and directories, so they run side by side. LEDGER_TEST_WORKERS=1 runs
# them in one process, e.g. to debug.
workers=${LEDGER_TEST_WORKERS:-$(nproc 2>/dev/null || echo 1)}
if [ "$workers" -gt 1 ]; then
    args=(-n "$workers" "${args[@]}")
fi

# The slowest tests are listed at the end: candidates for `slow` when the suite grows.
"$BIN/python" -m pytest --durations=30 "${args[@]}"
status=$?
if [ "$status" -eq 5 ]; then
    echo "run-tests: pytest collected no tests; treating that as a failure" >&2
    exit 1
fi
exit "$status"
