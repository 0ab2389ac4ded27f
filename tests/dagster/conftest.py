"""Fixtures for the Dagster layer: an ephemeral instance with the simulator's accounts."""

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from ledger_etl.defs.history.assets import (
    ledger_entries,
    monthly_statement,
    raw_activity,
    raw_transactions,
)
from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.defs.resources import CapitalApiResource, LedgerResource
from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, make_server
from tests.integration.ledger_helpers import account_ids

# The history assets in run order, for tests that materialize them directly.
ASSETS = [raw_transactions, raw_activity, ledger_entries, monthly_statement]


def capital_for(server: SimulatorServer, **overrides: object) -> CapitalApiResource:
    options: dict[str, object] = {
        "api_url": server.url, "api_key": API_KEY, "identifier": IDENTIFIER,
        "password": PASSWORD, "rate_limit": "200", **overrides,
    }  # fmt: skip
    return CapitalApiResource(**options)


@pytest.fixture(scope="session")
def recent_sim() -> Iterator[SimulatorServer]:
    """Accounts opened on 2025-11-01, so a ledger of a few months holds their whole history and
    statements can reconcile with the broker's balance."""
    server = make_server(start=date(2025, 11, 1), rate_limit_per_second=0)
    yield server
    server.stop()


@pytest.fixture
def instance(recent_sim: SimulatorServer) -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        test_instance.add_dynamic_partitions(ACCOUNTS.name, account_ids(recent_sim))
        yield test_instance


@pytest.fixture
def resources(recent_sim: SimulatorServer, tmp_path: Path) -> dict[str, object]:
    return {
        "capital": capital_for(recent_sim),
        "ledger": LedgerResource(
            database_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
            export_dir=str(tmp_path / "exports"),
        ),
    }


from tests.trading.conftest import frozen_sim  # noqa: E402,F401
