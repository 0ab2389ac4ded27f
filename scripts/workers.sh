#!/usr/bin/env bash
# N Celery workers for the history jobs (what `make workers N=2` runs), in the foreground;
# Ctrl-C stops them all. Each worker runs one step at a time (-c 1) and is named
# ledger-<i>@<host>, the name the run's event log shows for each step it executed.
# Needs the same environment as the code location: DAGSTER_HOME (a copy of
# dagster_home/postgres), DAGSTER_POSTGRES_URL, LEDGER_EXECUTOR=celery, LEDGER_CELERY_BROKER, and
# the CAPITAL_* / LEDGER_* variables of the ledger and the API (see docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export PATH="$(cd "$BIN" && pwd):$PATH"  # dagster-celery starts `celery` from the PATH
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home/postgres}
export LEDGER_EXECUTOR=${LEDGER_EXECUTOR:-celery}
export LEDGER_CELERY_BROKER=${LEDGER_CELERY_BROKER:-amqp://guest:guest@127.0.0.1:5672//}
count=${N:-2}
prefix=${WORKER_PREFIX:-ledger}
# LEDGER_CELERY_QUEUE: the queue the code location sends steps to (default `dagster`); two
# deployments on one broker each need their own, or one's workers take the other's steps.
queue_args=()
if [ -n "${LEDGER_CELERY_QUEUE:-}" ]; then queue_args=(-q "$LEDGER_CELERY_QUEUE"); fi
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait || true; }
trap stop EXIT
trap 'exit 130' INT TERM
for i in $(seq 1 "$count"); do
    "$BIN/dagster-celery" worker start -y dagster_home/postgres/celery.yaml \
        --name "$prefix-$i" "${queue_args[@]}" -A dagster_celery.app -- -c 1 --without-gossip --without-mingle &
    pids+=($!)
done
echo "workers: $count Celery worker(s) on ${LEDGER_CELERY_BROKER%%://*}; Ctrl-C stops them" >&2
wait
