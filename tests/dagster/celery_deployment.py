"""A Celery deployment on this machine for the slow tests: the Dagster instance on a fresh
PostgreSQL database (the dagster_home/postgres profile), a fresh ledger database, and N workers
started by scripts/workers.sh (what `make workers` runs), on the machine's RabbitMQ.

Locally, a missing RabbitMQ or PostgreSQL skips with the reason; in CI (`CI=true`) it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg
import pytest
from kombu import Connection, Queue

from ledger_etl.defs.history.assets import API_POOL
from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD
from tests.integration.ledger_helpers import account_ids

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("LEDGER_TEST_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
SERVER = os.environ.get("LEDGER_TEST_POSTGRES_SERVER", "postgresql://postgres@127.0.0.1:5432")
BIN = Path(sys.executable).parent
WORKER_EVENT = "Celery worker"  # dagster-celery's engine-event metadata naming a step's worker


def _reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return False
    return True


def require_services() -> None:
    """Locally, skip with the reason when RabbitMQ or PostgreSQL is absent; in CI, fail."""
    missing = [
        name
        for name, port in (("RabbitMQ", 5672), ("PostgreSQL", 5432))
        if not _reachable("127.0.0.1", port)
    ]
    if missing and os.environ.get("CI") != "true":
        pytest.skip(f"{' and '.join(missing)} not reachable on 127.0.0.1 (required in CI)")
    assert not missing, f"{missing} not reachable on 127.0.0.1: CI must provide them"


@contextmanager
def fresh_databases() -> Iterator[dict[str, str]]:
    """A fresh database for the Dagster instance and one for the ledger, dropped afterwards."""
    require_services()
    names = {kind: f"ledger_etl_{kind}_{uuid.uuid4().hex[:10]}" for kind in ("dagster", "ledger")}
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {kind: f"{SERVER}/{name}" for kind, name in names.items()}
    finally:
        with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
            for name in names.values():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def dagster_url(url: str) -> str:
    """dagster-postgres speaks psycopg2: name the driver (SQLAlchemy 2.1 defaults to psycopg 3)."""
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


@dataclass
class Deployment:
    env: dict[str, str]
    home: Path  # DAGSTER_HOME
    data: Path  # the export store and the workers' log
    prefix: str  # workers are named <prefix>-<i>@<host>

    @property
    def log(self) -> Path:
        return self.data / "workers.log"

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home))

    def worker_pids(self, name: str) -> list[int]:
        """The processes of worker `<prefix>-<i>` (the Celery main process and its pool child,
        which share the command line and its worker name), read from /proc."""
        marker = f"{name}@".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if marker in cmdline and b"celery" in cmdline:
                pids.append(int(entry.name))
        return pids

    def materialize(self, partition: str) -> subprocess.CompletedProcess:
        """One partition of `close_month`, orchestrated here, its steps run by the workers."""
        tags = json.dumps({"dagster/partition": partition})
        return subprocess.run(
            [str(BIN / "dagster"), "job", "execute", "-m", "ledger_etl.definitions",
             "-a", "defs", "-j", "close_month", "--tags", tags],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    def failure(self, result: subprocess.CompletedProcess) -> str:
        """What to show when a run failed: its output and the workers' log, both cut short."""
        return (result.stdout + result.stderr)[-3000:] + self.log.read_text()[-3000:]


@contextmanager
def celery_deployment(
    databases: dict[str, str], simulator: SimulatorServer, tmp: Path, workers: int = 2
) -> Iterator[Deployment]:
    """The PostgreSQL profile, the ledger migrated, and `workers` Celery workers."""
    home, data = tmp / "dagster_home", tmp / "data"
    home.mkdir()
    data.mkdir()
    shutil.copy(ROOT / "dagster_home" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    # Our workers' names and queue: other deployments on the machine's broker (other test runs)
    # neither take our steps nor hand us theirs.
    prefix = f"q{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPITAL_", "LEDGER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        DAGSTER_POSTGRES_URL=dagster_url(databases["dagster"]),
        LEDGER_EXECUTOR="celery",
        LEDGER_CELERY_BROKER=BROKER,
        CAPITAL_API_URL=simulator.url,
        CAPITAL_API_KEY=API_KEY,
        CAPITAL_IDENTIFIER=IDENTIFIER,
        CAPITAL_PASSWORD=PASSWORD,
        LEDGER_DATABASE_URL=databases["ledger"],
        LEDGER_EXPORT_DIR=str(data / "exports"),
        VENV=str(BIN.parent),
        N=str(workers),
        WORKER_PREFIX=prefix,
        LEDGER_CELERY_QUEUE=prefix,
    )
    upgrade(make_engine(databases["ledger"]))
    os.environ["DAGSTER_POSTGRES_URL"] = env["DAGSTER_POSTGRES_URL"]
    deployment = Deployment(env, home, data, prefix)
    with deployment.instance() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, account_ids(simulator))
        # Set once when the instance is created (docs/deploy.md): runs that start together
        # would otherwise each try to create the pool's row from `default_limit`.
        instance.event_log_storage.set_concurrency_slots(API_POOL, 1)
    log = deployment.log.open("w")
    process = subprocess.Popen(
        ["bash", "scripts/workers.sh"],  # what `make workers N=<workers>` runs
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield deployment
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
        os.environ.pop("DAGSTER_POSTGRES_URL", None)
        _delete_queue(prefix)


def _delete_queue(name: str) -> None:
    """Remove the test's queue from the shared broker (Celery declares it durable)."""
    with Connection(BROKER) as connection:
        Queue(name).bind(connection.default_channel).delete()


def step_workers(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step key, worker name) of every step a Celery worker started in the run, in order."""
    started = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        metadata = event.engine_event_data.metadata if event else {}
        if event and WORKER_EVENT in metadata:
            started.append((event.step_key, str(metadata[WORKER_EVENT].value).split("@")[0]))
    return started


def finished_steps(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    ends = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE)
    return {
        e.dagster_event.step_key
        for e in instance.all_logs(run_id, of_type=set(ends))
        if e.dagster_event
    }
