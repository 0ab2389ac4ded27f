#!/usr/bin/env bash
# The Dagster UI and daemon (what `make dev` runs): the daemon in the background, the webserver
# in the foreground; stopping one stops both. DAGSTER_HOME defaults to the project's
# dagster_home/, the address to DAGSTER_HOST:DAGSTER_PORT (127.0.0.1:3000).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home}
host=${DAGSTER_HOST:-127.0.0.1}
port=${DAGSTER_PORT:-3000}

"$BIN/dagster-daemon" run -w workspace.yaml &
daemon=$!
stop() { kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; }
trap stop EXIT
trap 'exit 130' INT TERM
echo "dev: Dagster UI on http://$host:$port (instance $DAGSTER_HOME); Ctrl-C stops it" >&2
"$BIN/dagster-webserver" -w workspace.yaml -h "$host" -p "$port" &
wait $!
