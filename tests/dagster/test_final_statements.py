"""FINAL means proven, on the Dagster path: a month backfilled alone without its history is
PROVISIONAL with its reasons, fails the blocking check and is logged at WARNING; balances that do
not roll forward across the published months fail."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest

from ledger_etl.defs.history.checks import CHECKS
from ledger_etl.defs.history.partitions import ACCOUNTS, partition_key
from ledger_etl.defs.resources import LedgerResource
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements.published import PublishedStatements
from tests.conftest import make_server
from tests.dagster.conftest import ASSETS, capital_for
from tests.integration.ledger_helpers import account_ids


@pytest.fixture(scope="module")
def october_sim() -> Iterator[SimulatorServer]:
    """Accounts opened on 2025-10-01; the simulated now is 2026-01-15."""
    server = make_server(start=date(2025, 10, 1), rate_limit_per_second=0)
    yield server
    server.stop()


def _run(server: SimulatorServer, tmp_path: Path, instance: dg.DagsterInstance, month: str):  # type: ignore[no-untyped-def]
    account = account_ids(server)[0]
    resources = {
        "capital": capital_for(server),
        "ledger": LedgerResource(
            database_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
            export_dir=str(tmp_path / "exports"),
        ),
    }
    return dg.materialize(
        [*ASSETS, *CHECKS],
        instance=instance,
        resources=resources,
        partition_key=partition_key(month, account),
        raise_on_error=False,
    )


def test_one_month_without_its_history_is_provisional_and_blocks(
    october_sim: SimulatorServer, tmp_path: Path
) -> None:
    """November alone, in a ledger without October: the opening (0) is not the broker's, so
    the statement is PROVISIONAL with each reason, never FINAL, and the blocking check fails."""
    account = account_ids(october_sim)[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, [account])
        result = _run(october_sim, tmp_path, instance, "2025-11")
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        warned = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.level == logging.WARNING and "PROVISIONAL" in entry.user_message
        ]
    published = PublishedStatements(tmp_path / "exports")
    document = published.document(account, "2025-11")
    assert document["status"] == "PROVISIONAL"
    assert document["opening_balance"] == "0.00"
    reasons = document["status_reasons"]
    assert any(r.startswith("reconciliation DIFFERENCE of ") for r in reasons), reasons
    assert any(r.startswith("opening balance 0.00 not proven") for r in reasons), reasons
    reconciles = checks["statement_reconciles"]
    assert not reconciles.passed and reconciles.blocking
    assert reconciles.metadata["failures"].value[f"{account}|2025-11"]["status_reasons"] == reasons  # type: ignore[index]
    assert len(warned) == 1 and "opening balance 0.00 not proven" in warned[0], warned


def test_balances_must_roll_forward_across_the_published_months(
    october_sim: SimulatorServer, tmp_path: Path
) -> None:
    """October published, November skipped, December published: December's check names the
    missing month; publishing November then closes the gap."""
    account = account_ids(october_sim)[0]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, [account])
        _run(october_sim, tmp_path, instance, "2025-10")
        december = _run(october_sim, tmp_path, instance, "2025-12")
        rolls = {e.check_name: e for e in december.get_asset_check_evaluations()}
        failure = rolls["balance_rolls_forward"]
        assert not failure.passed
        problems = failure.metadata["failures"].value[f"{account}|2025-12"]["problems"]  # type: ignore[index]
        assert problems == ["months between 2025-10 and 2025-12 are not published"]

        november = _run(october_sim, tmp_path, instance, "2025-11")
        filled = {e.check_name: e for e in november.get_asset_check_evaluations()}
        assert filled["balance_rolls_forward"].passed, filled["balance_rolls_forward"].metadata
        checked = filled["balance_rolls_forward"].metadata["checked"].value[f"{account}|2025-11"]  # type: ignore[index]
        assert checked["previous"]["month"] == "2025-10" and checked["next"]["month"] == "2025-12"
        statuses = {
            m: PublishedStatements(tmp_path / "exports").document(account, m)["status"]
            for m in ("2025-10", "2025-11", "2025-12")
        }
    assert statuses == {"2025-10": "FINAL", "2025-11": "FINAL", "2025-12": "FINAL"}
