"""Materializations through a faulty API: transient faults heal, a permanent one is visible."""

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg

from ledger_etl.defs.history.checks import CHECKS
from ledger_etl.defs.history.partitions import ACCOUNTS, partition_key
from ledger_etl.defs.resources import LedgerResource
from ledger_etl.monthly import month_bounds
from tests.conftest import make_server
from tests.dagster.conftest import capital_for
from tests.dagster.test_definitions import ASSETS
from tests.integration.ledger_helpers import account_ids, ledger_amounts, truth_amounts


def _run(
    server, tmp_path: Path, month: str, **capital: object
) -> tuple[dg.ExecuteInProcessResult, object, str]:
    account = account_ids(server)[1]
    resources = {
        "capital": capital_for(server, **capital),
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
            raise_on_error=False,  # a PROVISIONAL statement fails the blocking check
        )
    return result, resources["ledger"], account


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    events = result.get_asset_materialization_events()
    event = next(m for m in events if m.asset_key.to_user_string() == asset)
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _statement(result: dg.ExecuteInProcessResult) -> dict:
    return _metadata(result, "monthly_statement")


def test_transient_faults_still_give_a_complete_reconciled_month(tmp_path: Path) -> None:
    # 429s come from the throttle rule; the simulator's own 10 req/s limit is off because the
    # test's client is set far above it to run quickly. The server silently caps answers at 12
    # rows and the resource's split threshold is set to that cap (one below the threshold cannot
    # be seen in a single answer: the next test shows the reconciliation catching it). At one
    # 503 in 11 and one drop in 13 requests a window runs out of its 6 attempts about once in
    # five runs on a loaded machine; the fetch's second pass over such windows, after all the
    # others were tried, is what still makes the month complete.
    server = make_server(start=date(2025, 12, 1), rate_limit_per_second=0,
                         faults={"seed": 3, "truncate_above": 12,
        "rules": [{"kind": "throttle", "probability": 0.05},
                  {"kind": "status", "status": 503, "every": 11},
                  {"kind": "drop", "every": 13},
                  {"kind": "expire_session", "every": 40}]})  # fmt: skip
    try:
        result, ledger, account = _run(server, tmp_path, "2025-12", split_threshold="12")
        assert result.success
        assert _metadata(result, "raw_transactions")["splits"] > 0
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
        # The statement is published (PROVISIONAL); the blocking check then fails the run.
        assert not result.success
        assert [e.step_key for e in result.all_events if e.is_step_failure] == [
            "monthly_statement_statement_reconciles"
        ]
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


def test_a_silent_cap_below_the_split_threshold_is_caught_by_the_reconciliation(
    tmp_path: Path,
) -> None:
    # Answers are cut to their newest 5 rows and the client, at its default threshold of 1,000,
    # cannot see it in any one answer: the month's oldest rows of its busiest days go missing.
    # The broker balance does not lie, so the statement must not reconcile.
    server = make_server(
        start=date(2025, 12, 1), rate_limit_per_second=0, faults={"truncate_above": 5}
    )
    try:
        result, ledger, account = _run(server, tmp_path, "2025-12")
        assert not result.success  # the blocking check stops the run
        start, end = month_bounds("2025-12")
        stored = ledger_amounts(ledger.engine(), account, start, end)
        truth = truth_amounts(server, account, start, end)
        assert set(stored) < set(truth)  # the premise: rows really were lost
        statement = _statement(result)
        assert statement["reconciliation"] == "DIFFERENCE"
        check = _checks(result)["statement_reconciles"]
        assert not check.passed
        # The broker's balance is every transaction up to the observation; the difference is
        # exactly what the ledger lacks up to then (the tail after the month is capped too).
        document = json.loads((Path(statement["folder"]) / "statement.json").read_text())
        observed_at = datetime.fromisoformat(document["reconciliation"]["observed_at"])
        lacking = sum(ledger_amounts(ledger.engine(), account, start, observed_at).values()) - sum(
            truth_amounts(server, account, start, observed_at).values()
        )
        difference = check.metadata["failures"].value[f"{account}|2025-12"]["difference"]
        assert lacking != 0 and Decimal(difference) == lacking
    finally:
        server.stop()
