"""A backfill launched the way the UI does it: `dagster dev` (webserver + daemon) on loopback,
the GraphQL mutation the backfill dialog sends, then the ledger against the ground truth."""

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import httpx
import pytest
from sqlalchemy import func, select

from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import make_engine
from ledger_etl.simulator import SimulatorServer
from ledger_etl.simulator.server import free_port
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, make_server
from tests.integration.ledger_helpers import account_ids, ledger_amounts, truth_amounts

ROOT = Path(__file__).resolve().parents[2]
MONTHS = ["2025-10", "2025-11", "2025-12"]
ASSETS = ["raw_transactions", "raw_activity", "ledger_entries", "monthly_statement"]
LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
  }
}"""
STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    server = make_server(start=date(2025, 10, 1))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def dagster_dev(
    simulator: SimulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, account_ids(simulator))
    port = free_port()
    data = tmp_path_factory.mktemp("data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPITAL_", "LEDGER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        CAPITAL_API_URL=simulator.url,
        CAPITAL_API_KEY=API_KEY,
        CAPITAL_IDENTIFIER=IDENTIFIER,
        CAPITAL_PASSWORD=PASSWORD,
        LEDGER_DATABASE_URL=f"sqlite:///{data / 'ledger.sqlite'}",
        LEDGER_EXPORT_DIR=str(data / "exports"),
        VENV=str(Path(sys.executable).parent.parent),
        DAGSTER_HOST="127.0.0.1",
        DAGSTER_PORT=str(port),
    )
    log = (data / "dagster-dev.log").open("w")
    process = subprocess.Popen(
        ["bash", "scripts/dev.sh"],  # what `make dev` runs
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.post(url, json={"query": "{ version }"}, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (data / "dagster-dev.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not start in 120 s"
            time.sleep(1)
        yield {"url": url, "data": data, "log": data / "dagster-dev.log"}
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def _graphql(url: str, query: str, variables: dict) -> dict:
    response = httpx.post(url, json={"query": query, "variables": variables}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def _backfill(dev: dict, partitions: list[str]) -> str:
    data = _graphql(
        dev["url"],
        LAUNCH,
        {
            "params": {
                "partitionNames": partitions,
                "assetSelection": [{"path": [a]} for a in ASSETS],
            }
        },
    )
    launched = data["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = _graphql(dev["url"], STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        if status.get("status") in (
            "COMPLETED",
            "COMPLETED_SUCCESS",
            "FAILED",
            "COMPLETED_FAILED",
            "CANCELED",
        ):
            return status["status"]
        time.sleep(2)
    raise AssertionError(
        "the backfill did not finish in 10 minutes: " + dev["log"].read_text()[-3000:]
    )


def _state(dev: dict) -> tuple[int, int, list[Path]]:
    engine = make_engine(f"sqlite:///{dev['data'] / 'ledger.sqlite'}")
    with engine.connect() as conn:
        entries = conn.execute(select(func.count()).select_from(s.ledger_entries)).scalar_one()
        activities = conn.execute(select(func.count()).select_from(s.activities)).scalar_one()
    versions = sorted(p for p in (dev["data"] / "exports").glob("*/*/v*") if p.is_dir())
    return entries, activities, versions


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_ui_backfill_of_three_months_for_two_accounts(
    simulator: SimulatorServer, dagster_dev: dict
) -> None:
    accounts = account_ids(simulator)
    partitions = [f"{a}|{m}" for a in accounts for m in MONTHS]
    assert _backfill(dagster_dev, partitions) in ("COMPLETED", "COMPLETED_SUCCESS")
    engine = make_engine(f"sqlite:///{dagster_dev['data'] / 'ledger.sqlite'}")
    start, end = datetime(2025, 10, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    for account in accounts:
        assert ledger_amounts(engine, account, start, end) == truth_amounts(
            simulator, account, start, end
        )
    first = _state(dagster_dev)
    assert len(first[2]) == len(partitions)  # one statement version per month and account
    # The same backfill again changes nothing: no new rows, no new statement versions.
    assert _backfill(dagster_dev, partitions) in ("COMPLETED", "COMPLETED_SUCCESS")
    assert _state(dagster_dev) == first
    # What `make dev` runs uses the current Dagster commands: nothing superseded or deprecated.
    log = dagster_dev["log"].read_text()
    assert "SupersessionWarning" not in log and "is superseded" not in log, log[-2000:]
