"""SIGKILL during ingestion at several points, then a re-run: the same ledger as a clean run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url

from ledger_etl.ledger.store import ledger_digest
from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, database_url_of, make_test_engine
from tests.integration.ledger_helpers import account_ids

RANGE = ["--from", "2025-05-01", "--to", "2025-05-11"]


def _sync(
    server: SimulatorServer, database_url: str, kill_at: str | None, account: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPITAL_", "LEDGER_"))}
    env.update(
        CAPITAL_API_URL=server.url,
        CAPITAL_API_KEY=API_KEY,
        CAPITAL_IDENTIFIER=IDENTIFIER,
        CAPITAL_PASSWORD=PASSWORD,
        CAPITAL_RATE_LIMIT="200",
        LEDGER_DATABASE_URL=database_url,
    )
    if kill_at:
        env["LEDGER_ETL_KILL_AT"] = kill_at
    return subprocess.run(
        [sys.executable, "-m", "ledger_etl.cli", "sync", *RANGE, "--account", account],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _digest(engine: Engine) -> str:
    with engine.connect() as conn:
        return ledger_digest(conn)


@pytest.fixture(scope="module")
def clean_digest(shared_sim: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    from ledger_etl.ledger.db import make_engine

    url = f"sqlite:///{tmp_path_factory.mktemp('clean') / 'clean.sqlite'}"
    done = _sync(shared_sim, url, None, account_ids(shared_sim)[1])
    assert done.returncode == 0, done.stderr
    return _digest(make_engine(url))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    "kill_at",
    ["after_fetch:1", "mid_upsert:1", "before_commit:1", "before_commit:2", "mid_upsert:2"],
)
def test_killed_sync_then_rerun_equals_clean_run(
    backend: str,
    kill_at: str,
    shared_sim: SimulatorServer,
    clean_digest: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    engine = make_test_engine(backend, tmp_path, request)
    url = database_url_of(engine)
    account = account_ids(shared_sim)[1]  # not the preferred account: exercises the switch
    killed = _sync(shared_sim, url, kill_at, account)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    rerun = _sync(shared_sim, url, None, account)
    assert rerun.returncode == 0, rerun.stderr
    assert _digest(engine) == clean_digest
    if backend == "sqlite":
        database = make_url(url).database
        assert database is not None
        with sqlite3.connect(database) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
