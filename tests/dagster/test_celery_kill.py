"""A Celery worker killed with SIGKILL in the middle of a step loses nothing: the broker hands the
step back (late acknowledgement, ledger_etl/defs/scale.py), the other worker runs it again from
its start, and the ledger ends equal to the simulator's ground truth with no row stored twice.
Also: nothing under DAGSTER_HOME, nor in the instance database, holds the broker's password."""

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import dagster as dg
import httpx
import psycopg
import pytest
from sqlalchemy import Engine, select

from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import make_engine
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements.published import PublishedStatements
from tests.conftest import make_server
from tests.dagster.celery_deployment import (
    BROKER,
    Deployment,
    celery_deployment,
    finished_steps,
    fresh_databases,
    step_workers,
)
from tests.integration.ledger_helpers import account_ids, truth

MONTHS = ["2025-10", "2025-11"]
START, END = datetime(2025, 10, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
STEP = "raw_transactions"
# The simulator holds one October transactions window this long (under the client's 30 s read
# timeout): the step that asked for it is then mid-way, its sync run opened in the ledger.
STALL = {"kind": "latency", "seconds": 20, "path": "^/history/transactions$",
         "query": "from=2025-10-15T", "times": 1}  # fmt: skip


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    server = make_server(start=date(2025, 10, 1))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def deployment(
    simulator: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    with (
        fresh_databases() as databases,
        celery_deployment(databases, simulator, tmp_path_factory.mktemp("celery_kill")) as dep,
    ):
        yield dep


def _steps_in_flight(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """(run id, worker) of each `raw_transactions` step a worker has started and not finished.
    Several can be: a step claims its login's slot after it starts, so one may hold the slot
    while another waits for it (only the holder opens a sync run in the ledger)."""
    in_flight = []
    for run in instance.get_runs():
        done = finished_steps(instance, run.run_id)
        in_flight += [
            (run.run_id, worker)
            for step, worker in step_workers(instance, run.run_id)
            if step == STEP and step not in done
        ]
    return in_flight


def _open_sync_runs(engine: Engine, run_id: str) -> int:
    """The ledger's sync runs of the Dagster run that are still open (`running`)."""
    with engine.connect() as conn:
        rows = conn.execute(select(s.runs.c.params).where(s.runs.c.status == "running")).all()
    return sum(1 for (params,) in rows if params.get("dagster_run_id") == run_id)


def _kill_mid_step(deployment: Deployment, simulator: SimulatorServer) -> tuple[str, str]:
    """Wait until the stalled window is being served, then SIGKILL the worker whose step asked
    for it (its Celery main process and pool child: the machine is gone). (run id, worker)."""
    engine = make_engine(deployment.env["LEDGER_DATABASE_URL"])
    deadline = time.monotonic() + 300
    with deployment.instance() as instance:
        while time.monotonic() < deadline:
            fired = simulator.simulator.faults.describe()["rules"][0].get("fired", 0)
            holders = [step for step in (_steps_in_flight(instance) if fired else [])
                       if _open_sync_runs(engine, step[0])]  # fmt: skip
            assert len(holders) <= 1, holders  # the login's slot: one sync run at a time
            stalled = holders[0] if holders else None
            if stalled:
                pids = deployment.worker_pids(stalled[1])
                assert pids, f"no process of worker {stalled[1]}"
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                return stalled
            time.sleep(0.2)
    log = deployment.log.read_text()[-3000:]
    raise AssertionError(f"no worker was seen running the stalled step\n{log}")


def _await_second_start(deployment: Deployment, run_id: str, seconds: float = 180) -> None:
    """Fail fast when the killed step is not started again: a lost step leaves its run waiting
    for ever (deaf to SIGTERM), holding the API pool's slot that every other run waits for."""
    deadline = time.monotonic() + seconds
    with deployment.instance() as instance:
        while time.monotonic() < deadline:
            if [step for step, _ in step_workers(instance, run_id)].count(STEP) >= 2:
                return
            time.sleep(1)
    raise AssertionError(f"the killed step was not started again within {seconds:.0f} s")


def _months(account: str, stop: threading.Event) -> Iterator[tuple[str, str]]:
    """The account's months in order (a statement opens with the previous month's close)."""
    for month in MONTHS:
        if stop.is_set():
            return
        yield account, month


def _own_children(program: str) -> list[int]:
    """The processes this test started that run `program` (its orchestrating runs)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, NotADirectoryError):
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and f"/{program}\0".encode() in cmdline:
            pids.append(int(entry.name))
    return pids


def _rows(engine: Engine, table: s.Table, account: str, time_column: str) -> list[tuple]:
    column = table.c[time_column]
    query = select(table.c.reference, *([table.c.amount] if table is s.ledger_entries else []))
    query = query.where(table.c.account_id == account, column >= START, column < END)
    with engine.connect() as conn:
        return sorted(tuple(row) for row in conn.execute(query))


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_worker_killed_mid_step_loses_nothing(
    simulator: SimulatorServer, deployment: Deployment
) -> None:
    httpx.put(f"{simulator.url}/_sim/faults", json={"rules": [STALL]}).raise_for_status()
    accounts = account_ids(simulator)

    stop = threading.Event()  # set when the test fails early: start no further run

    def account_runs(account: str) -> list:
        return [deployment.materialize(f"{a}|{m}") for a, m in _months(account, stop)]

    with ThreadPoolExecutor(len(accounts)) as pool:
        futures = [pool.submit(account_runs, account) for account in accounts]
        try:
            killed_run, victim = _kill_mid_step(deployment, simulator)
            _await_second_start(deployment, killed_run)
        except BaseException:
            stop.set()
            for pid in _own_children("dagster"):  # runs stuck behind the lost step's pool slot
                os.kill(pid, signal.SIGKILL)
            raise
        results = [result for future in futures for result in future.result()]
    for result in results:
        assert result.returncode == 0, deployment.failure(result)

    with deployment.instance() as instance:
        runs = instance.get_runs()
        assert len(runs) == len(accounts) * len(MONTHS)
        assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        # The killed step was started again on the other worker, and succeeded there.
        again = [worker for step, worker in step_workers(instance, killed_run) if step == STEP]
        assert len(again) == 2 and again[0] == victim and again[1] != victim, again
        starts = instance.all_logs(killed_run, of_type=dg.DagsterEventType.STEP_START)
        assert [e.dagster_event.step_key for e in starts].count(STEP) == 2
    assert not deployment.worker_pids(victim)

    published = PublishedStatements(deployment.data / "exports")
    for account in accounts:
        for month in MONTHS:
            document = published.document(account, month)
            assert document["status"] == "FINAL", (account, month, document["status_reasons"])
            assert document["reconciliation"]["status"] == "RECONCILED", (account, month)
    engine = make_engine(deployment.env["LEDGER_DATABASE_URL"])
    for account in accounts:
        rows = truth(simulator, "transactions", account, START, END)
        expected = sorted((row["reference"], Decimal(row["size"])) for row in rows)
        assert _rows(engine, s.ledger_entries, account, "posted_at") == expected, account
        raw = _rows(engine, s.raw_transactions, account, "date_utc")
        assert raw == [(ref,) for ref, _ in expected], account


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_no_file_under_dagster_home_holds_the_broker_password(deployment: Deployment) -> None:
    password = urlsplit(BROKER).password
    assert password, f"the test broker URL has no password: {BROKER}"
    with deployment.instance() as instance:
        if not instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS])):
            account = instance.get_dynamic_partitions(ACCOUNTS.name)[0]
            result = deployment.materialize(f"{account}|{MONTHS[0]}")
            assert result.returncode == 0, deployment.failure(result)
    files = [path for path in Path(deployment.home).rglob("*") if path.is_file()]
    assert files  # the run wrote its logs there
    holding = [str(path) for path in files if password.encode() in path.read_bytes()]
    assert holding == [], f"the broker password is written to {holding}"
    assert not (deployment.home / "dagster_celery").exists()
    # Nor does the instance database: runs and events name the variable, never its value.
    credentials = f"%{urlsplit(BROKER).username}:{password}@%"
    with psycopg.connect(deployment.env["DAGSTER_POSTGRES_URL"].replace("+psycopg2", "")) as conn:
        for table, column in (("runs", "run_body"), ("event_logs", "event")):
            found = conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column} LIKE %s", (credentials,)
            ).fetchone()
            assert found == (0,), f"{table}.{column} holds the broker's credentials"
