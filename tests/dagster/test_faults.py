"""Materializations through a faulty API: transient faults heal, a permanent one is visible."""

from datetime import date
from pathlib import Path

import dagster as dg

from ledger_etl.defs.checks import CHECKS
from ledger_etl.defs.partitions import ACCOUNTS, partition_key
from ledger_etl.defs.resources import LedgerResource
from tests.conftest import make_server
from tests.dagster.conftest import capital_for
from tests.dagster.test_definitions import ASSETS
from tests.integration.ledger_helpers import account_ids, ledger_amounts, truth_amounts


def _run(server, tmp_path: Path, month: str) -> tuple[dg.ExecuteInProcessResult, object, str]:
    account = account_ids(server)[1]
    resources = {
        "capital": capital_for(server),
        "ledger": LedgerResource(
            database_url=f"sqlite:///{tmp_path / 'l.sqlite'}", export_dir=str(tmp_path / "exports")
        ),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, account_ids(server))
        result = dg.materialize(
            [*ASSETS, *CHECKS],
            instance=instance,
            resources=resources,
            partition_key=partition_key(month, account),
        )
    return result, resources["ledger"], account


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _statement(result: dg.ExecuteInProcessResult) -> dict:
    event = next(
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key.to_user_string() == "monthly_statement"
    )
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_transient_faults_still_give_a_complete_reconciled_month(tmp_path: Path) -> None:
    # 429s come from the throttle rule; the simulator's own 10 req/s limit is off because the
    # test's client is set far above it to run quickly.
    server = make_server(start=date(2025, 12, 1), rate_limit_per_second=0,
                         faults={"seed": 3, "truncate_above": 12,
        "rules": [{"kind": "throttle", "probability": 0.08},
                  {"kind": "status", "status": 503, "every": 9},
                  {"kind": "drop", "every": 13},
                  {"kind": "expire_session", "every": 40}]})  # fmt: skip
    try:
        result, ledger, account = _run(server, tmp_path, "2025-12")
        assert result.success
        checks = _checks(result)
        assert all(c.passed for c in checks.values()), {
            k: c.metadata for k, c in checks.items() if not c.passed
        }
        statement = _statement(result)
        assert (statement["status"], statement["reconciliation"]) == ("FINAL", "RECONCILED")
        start, end = dg.MonthlyPartitionsDefinition(
            start_date="2025-12", fmt="%Y-%m"
        ).time_window_for_partition_key("2025-12")
        assert ledger_amounts(ledger.engine(), account, start, end) == truth_amounts(
            server, account, start, end
        )
        stats = server.simulator.stats.snapshot()
        assert stats["faults_fired"] > 10 and stats["logins"] >= 2
    finally:
        server.stop()


def test_a_permanently_failing_window_is_shown_and_the_statement_is_provisional(
    tmp_path: Path,
) -> None:
    server = make_server(
        start=date(2025, 12, 1),
        rate_limit_per_second=0,
        faults={
            "rules": [
                {
                    "kind": "status",
                    "status": 503,
                    "path": "^/history/activity$",
                    "query": "from=2025-12-10T00:00:00",
                }
            ]
        },
    )
    try:
        result, _, account = _run(server, tmp_path, "2025-12")
        assert result.success  # the run completes; the failure is in its checks and metadata
        coverage = _checks(result)["coverage_complete"]
        assert not coverage.passed
        gaps = coverage.metadata["failures"].value[f"{account}|2025-12"]
        assert gaps["activity"] == ["[2025-12-10T00:00:00+00:00, 2025-12-11T00:00:00+00:00)"]
        assert gaps["transactions"] == []
        statement = _statement(result)
        assert statement["status"] == "PROVISIONAL"
        assert not _checks(result)["statement_reconciles"].passed
    finally:
        server.stop()
