#!/usr/bin/env bash
# N Celery workers for the history jobs (what `make workers N=2` runs), in the foreground;
# Ctrl-C stops them all. Each worker runs one step at a time (-c 1) and is named
# ledger-<i>@<host>, the name the run's event log shows for each step it executed.
# The application is dagster-celery's, built in memory by ledger_etl/defs/celery_worker.py (late
# acknowledgement: a step whose worker dies goes back to the broker); unlike
# `dagster-celery worker start`, nothing with the broker URL is written under DAGSTER_HOME.
# Needs the same environment as the code location: DAGSTER_HOME (a copy of
# dagster_home/postgres), DAGSTER_POSTGRES_URL, LEDGER_EXECUTOR=celery, LEDGER_CELERY_BROKER (and
# LEDGER_CELERY_QUEUE when set), and the CAPITAL_* / LEDGER_* variables of the ledger and the API
# (see docs/deploy.md).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD/dagster_home/postgres}
export LEDGER_EXECUTOR=${LEDGER_EXECUTOR:-celery}
export LEDGER_CELERY_BROKER=${LEDGER_CELERY_BROKER:-amqp://guest:guest@127.0.0.1:5672//}
count=${N:-2}
prefix=${WORKER_PREFIX:-ledger}
queue=${LEDGER_CELERY_QUEUE:-dagster}  # the queue the run process sends steps to (defs/scale.py)
pids=()
stop() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait || true; }
trap stop EXIT
trap 'exit 130' INT TERM
for i in $(seq 1 "$count"); do
    "$BIN/celery" -A ledger_etl.defs.celery_worker worker --loglevel INFO -n "$prefix-$i@%h" \
        -Q "$queue" -c 1 --prefetch-multiplier=1 --without-gossip --without-mingle &
    pids+=($!)
done
echo "workers: $count Celery worker(s) on ${LEDGER_CELERY_BROKER%%://*}; Ctrl-C stops them" >&2
wait
