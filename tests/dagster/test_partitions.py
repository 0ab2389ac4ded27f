"""Which partitions a run works on, and which step fetches what: checks see exactly the run's
partitions, and the statement asset publishes from the ledger without calling the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from click.testing import CliRunner

from ledger_etl.cli import main
from ledger_etl.defs.history.assets import (
    ledger_entries,
    monthly_statement,
    raw_activity,
    raw_transactions,
)
from ledger_etl.defs.history.checks import CHECKS
from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.defs.resources import LedgerResource
from ledger_etl.runs import RUN_ID
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements.published import PublishedStatements
from tests.conftest import make_server
from tests.dagster.conftest import ASSETS, capital_for
from tests.integration.ledger_helpers import account_ids


@pytest.fixture(scope="module")
def three_accounts() -> Iterator[SimulatorServer]:
    server = make_server(start=date(2025, 11, 1), accounts=3, rate_limit_per_second=0)
    yield server
    server.stop()


def _resources(server: SimulatorServer, tmp_path: Path) -> dict[str, object]:
    return {
        "capital": capital_for(server),
        "ledger": LedgerResource(
            database_url=f"sqlite:///{tmp_path / 'ledger.sqlite'}",
            export_dir=str(tmp_path / "exports"),
        ),
    }


def test_a_run_across_an_account_boundary_checks_exactly_its_partitions(
    three_accounts: SimulatorServer, tmp_path: Path
) -> None:
    """A backfill chunk from the first account's November to the last account's December covers
    every account in between too: assets and checks must both work on those six partitions."""
    accounts = account_ids(three_accounts)
    assert len(accounts) == 3
    expected = {f"{a}|{m}" for a in accounts for m in ("2025-11", "2025-12")}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, accounts)
        result = dg.materialize(
            [*ASSETS, *CHECKS],
            instance=instance,
            resources=_resources(three_accounts, tmp_path),
            tags={
                "dagster/asset_partition_range_start": f"{accounts[0]}|2025-11",
                "dagster/asset_partition_range_end": f"{accounts[-1]}|2025-12",
            },
        )
        assert result.success
        published = result.asset_materializations_for_node("monthly_statement")[0].metadata
        assert set(published["by_partition"].value) == expected  # type: ignore[arg-type]
        evaluations = result.get_asset_check_evaluations()
        assert {e.check_name for e in evaluations} == {c.check_key.name for c in CHECKS}
        for evaluation in evaluations:
            checked = evaluation.metadata["checked"].value
            assert set(checked) == expected, evaluation.check_name  # type: ignore[arg-type]
            assert evaluation.passed, (evaluation.check_name, evaluation.metadata["failures"])


def test_the_statement_is_published_from_the_ledger_and_the_cli_agrees(
    three_accounts: SimulatorServer, tmp_path: Path
) -> None:
    """`raw_transactions` fetches the reconciliation tail and reports it; `monthly_statement`
    needs no API (its Capital.com resource points at a closed port here); the CLI's `statement`
    over the same ledger publishes the same content (it answers `unchanged`)."""
    account = account_ids(three_accounts)[0]
    resources = _resources(three_accounts, tmp_path)
    key = dg.MultiPartitionKey({"month": "2025-11", "account": account})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, [account])
        fetched = dg.materialize(
            [raw_transactions, raw_activity, ledger_entries],
            instance=instance,
            resources=resources,
            partition_key=key,
        )
        assert fetched.success
        meta = fetched.asset_materializations_for_node("raw_transactions")[0].metadata
        tail = meta["tail"].value[f"{account}|2025-11"]  # type: ignore[index]
        assert tail["from"] == "2025-12-01T00:00:00+00:00" and tail["failed_windows"] == 0
        assert tail["rows"] > 0 and meta["tail_rows"].value == tail["rows"]
        assert "tail" not in fetched.asset_materializations_for_node("raw_activity")[0].metadata

        assert "capital" not in monthly_statement.required_resource_keys
        offline = {
            **resources,
            "capital": capital_for(three_accounts, api_url="http://127.0.0.1:9"),
        }
        published = dg.materialize(
            [monthly_statement], instance=instance, resources=offline, partition_key=key
        )
        assert published.success
        meta = published.asset_materializations_for_node("monthly_statement")[0].metadata
        assert meta["reconciliation"].value == "RECONCILED" and meta["version"].value == 1
        # One run-id format everywhere; Dagster's own run id is kept beside it.
        manifest = PublishedStatements(resources["ledger"].exports()).manifest(account, "2025-11")  # type: ignore[attr-defined]
        assert RUN_ID.match(manifest["run_id"]) and manifest["dagster_run_id"] == published.run_id
        fetch_runs = {
            f["run_id"]
            for f in PublishedStatements(resources["ledger"].exports()).document(
                account, "2025-11"
            )["coverage"]["fetches"]
        }  # type: ignore[attr-defined]
        assert fetch_runs and all(RUN_ID.match(r) for r in fetch_runs)

    ledger: LedgerResource = resources["ledger"]  # type: ignore[assignment]
    cli = CliRunner().invoke(
        main,
        ["statement", "--month", "2025-11", "--account", account, "--out", str(ledger.exports())],
        env={"LEDGER_DATABASE_URL": ledger.database_url or ""},
    )
    assert cli.exit_code == 0, cli.output
    first = cli.output.splitlines()[0]
    assert first.startswith("unchanged: ") and first.endswith("/v1"), cli.output
