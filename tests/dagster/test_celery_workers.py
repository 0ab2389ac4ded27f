"""The history assets on two Celery workers, with the Dagster instance on PostgreSQL: what
`make workers N=2` and the dagster_home/postgres profile run, on this machine's RabbitMQ and
PostgreSQL. Every statement must come out FINAL and reconciled, and both workers must have run
steps (the event log names the Celery worker of each step)."""

import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import dagster as dg
import pytest

from ledger_etl.defs.history.assets import API_POOL
from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.defs.scale import LOGIN_TAG
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements.published import PublishedStatements
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, make_server
from tests.dagster.celery_deployment import BIN, BROKER, ROOT, fresh_databases
from tests.dagster.celery_deployment import dagster_url as _dagster_url
from tests.integration.ledger_helpers import account_ids, ledger_amounts, truth_amounts

MONTHS = ["2025-10", "2025-11"]


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """A fresh database for the Dagster instance and one for the ledger, dropped afterwards."""
    with fresh_databases() as urls:
        yield urls


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    server = make_server(start=date(2025, 10, 1))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deployment(
    databases: dict[str, str],
    simulator: SimulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict]:
    """The PostgreSQL profile, the ledger migrated, and two workers (scripts/workers.sh)."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(ROOT / "dagster_home" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path_factory.mktemp("data")
    queue = f"q{uuid.uuid4().hex[:8]}"  # our own queue: no other deployment takes our steps
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPITAL_", "LEDGER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        DAGSTER_POSTGRES_URL=_dagster_url(databases["dagster"]),
        LEDGER_EXECUTOR="celery",
        LEDGER_CELERY_BROKER=BROKER,
        LEDGER_CELERY_QUEUE=queue,
        CAPITAL_API_URL=simulator.url,
        CAPITAL_API_KEY=API_KEY,
        CAPITAL_IDENTIFIER=IDENTIFIER,
        CAPITAL_PASSWORD=PASSWORD,
        LEDGER_DATABASE_URL=databases["ledger"],
        LEDGER_EXPORT_DIR=str(data / "exports"),
        VENV=str(BIN.parent),
        N="2",
        WORKER_PREFIX=queue,
    )
    upgrade(make_engine(databases["ledger"]))
    os.environ["DAGSTER_POSTGRES_URL"] = env["DAGSTER_POSTGRES_URL"]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, account_ids(simulator))
        # Set once when the instance is created (docs/deploy.md): runs that start together
        # would otherwise each try to create the pool's row from `default_limit`.
        instance.event_log_storage.set_concurrency_slots(API_POOL, 1)
    log = (data / "workers.log").open("w")
    workers = subprocess.Popen(
        ["bash", "scripts/workers.sh"],  # what `make workers N=2` runs
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield {"env": env, "home": home, "data": data, "log": data / "workers.log"}
    finally:
        os.killpg(workers.pid, signal.SIGTERM)
        try:
            workers.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(workers.pid, signal.SIGKILL)
        log.close()
        os.environ.pop("DAGSTER_POSTGRES_URL", None)


def _materialize(deployment: dict, partition: str) -> subprocess.CompletedProcess:
    """One partition of `close_month`, orchestrated here, its steps run by the workers."""
    tags = json.dumps({"dagster/partition": partition})
    return subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "ledger_etl.definitions",
         "-a", "defs", "-j", "close_month", "--tags", tags],
        cwd=ROOT, env=deployment["env"], capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_history_runs_on_two_celery_workers(simulator: SimulatorServer, deployment: dict) -> None:
    accounts = account_ids(simulator)
    partitions = [f"{a}|{m}" for a in accounts for m in MONTHS]

    # Months of one account in order (the statement opens with the previous month's close);
    # the accounts side by side, so the two workers have steps to share.
    def account_runs(account: str) -> list[subprocess.CompletedProcess]:
        return [_materialize(deployment, f"{account}|{m}") for m in MONTHS]

    with ThreadPoolExecutor(len(accounts)) as pool:
        results = [r for runs in pool.map(account_runs, accounts) for r in runs]
    for result in results:
        assert result.returncode == 0, (result.stdout + result.stderr)[-3000:] + deployment[
            "log"
        ].read_text()[-3000:]

    published = PublishedStatements(deployment["data"] / "exports")
    for partition in partitions:
        account, month = partition.split("|")
        document = published.document(account, month)
        assert document["status"] == "FINAL", (partition, document["status_reasons"])
        assert document["reconciliation"]["status"] == "RECONCILED", partition
    engine = make_engine(deployment["env"]["LEDGER_DATABASE_URL"])
    start, end = datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
    for account in accounts:
        assert ledger_amounts(engine, account, start, end) == truth_amounts(
            simulator, account, start, end
        )

    workers: dict[str, str] = {}
    steps: set[str] = set()
    with dg.DagsterInstance.from_config(str(deployment["home"])) as instance:
        runs = instance.get_runs()
        assert len(runs) == len(partitions)
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        assert all(run.tags.get(LOGIN_TAG) == "default" for run in runs)
        for run in runs:
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
                event = entry.dagster_event
                metadata = event.engine_event_data.metadata if event else {}
                if "Celery worker" in metadata:
                    workers[f"{run.run_id}:{event.step_key}"] = metadata["Celery worker"].value
            succeeded = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
            steps |= {f"{run.run_id}:{e.dagster_event.step_key}" for e in succeeded}
    # Every step that succeeded (assets and their checks) names the worker that ran it.
    assert len(steps) >= 4 * len(partitions) and set(workers) == steps, (steps, workers)
    names = {name.split("@")[0] for name in workers.values()}
    prefix = deployment["env"]["WORKER_PREFIX"]
    assert names == {f"{prefix}-1", f"{prefix}-2"}, workers
