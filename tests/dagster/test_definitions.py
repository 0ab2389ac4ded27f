"""The Dagster layer through public Dagster APIs: assets, checks, schedules, sensors."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import dagster as dg
import pytest

from ledger_etl.definitions import defs
from ledger_etl.defs.history.assets import (
    ledger_entries,
    monthly_statement,
    raw_activity,
    raw_transactions,
)
from ledger_etl.defs.history.automation import (
    account_discovery_sensor,
    daily_sync_schedule,
    monthly_close_schedule,
    run_failure_alert,
    weekly_recheck_schedule,
)
from ledger_etl.defs.history.checks import CHECKS
from ledger_etl.defs.history.partitions import ACCOUNTS, partition_key
from ledger_etl.defs.resources import LedgerResource
from ledger_etl.simulator import SimulatorServer
from tests.dagster.conftest import capital_for
from tests.integration.ledger_helpers import account_ids, ledger_amounts, truth_amounts

ASSETS = [raw_transactions, raw_activity, ledger_entries, monthly_statement]


def test_definitions_load() -> None:
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {
        "raw_transactions", "raw_activity", "ledger_entries", "monthly_statement", "price_bars",
        "instruments", "positions_snapshot", "working_orders_snapshot", "order_lifecycle",
        "exposure_snapshot", "watchlists", "client_sentiment",
    }  # fmt: skip
    checks = {k.name for k in repo.asset_graph.asset_check_keys}
    assert checks == {
        "coverage_complete",
        "keys_unique",
        "balance_rolls_forward",
        "statement_reconciles",
        "published_statement_unchanged",
        "exposure_within_limits",
        "orders_follow_policy",
        "lifecycle_ties_out",
        "bars_complete",
        "stream_healthy",
        "bars_match_derived",
        "sentiment_poll_complete",
    }
    assert {s.name for s in repo.schedule_defs} == {
        "client_sentiment_schedule",
        "monthly_close_schedule",
        "daily_sync_schedule",
        "weekly_recheck_schedule",
        "trading_poll_schedule",
    }
    assert {s.name for s in repo.sensor_defs} == {
        "account_discovery_sensor", "run_failure_alert", "trading_alert_sensor",
    }  # fmt: skip


def _materialize(
    instance: dg.DagsterInstance, resources: dict, month: str, account: str, **kwargs: object
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ASSETS, *CHECKS],
        instance=instance,
        resources=resources,
        partition_key=partition_key(month, account),
        **kwargs,
    )


def test_month_materializes_to_ground_truth_and_checks_pass(
    recent_sim: SimulatorServer, instance: dg.DagsterInstance, resources: dict
) -> None:
    account = account_ids(recent_sim)[0]
    result = _materialize(instance, resources, "2025-11", account)
    assert result.success
    engine = resources["ledger"].engine()
    start, end = datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
    assert ledger_amounts(engine, account, start, end) == truth_amounts(
        recent_sim, account, start, end
    )
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {
        "coverage_complete": True,
        "keys_unique": True,
        "balance_rolls_forward": True,
        "statement_reconciles": True,
        "published_statement_unchanged": True,
    }
    statement = next(
        m for m in result.get_asset_materialization_events() if m.asset_key == monthly_statement.key
    ).materialization.metadata
    assert statement["reconciliation"].value == "RECONCILED"
    assert statement["status"].value == "FINAL"
    folder = Path(statement["folder"].value)
    assert (folder / "statement.json").exists() and (folder / "manifest.json").exists()
    raw = next(
        m for m in result.get_asset_materialization_events() if m.asset_key == raw_transactions.key
    ).materialization.metadata
    assert raw["windows"].value == 31 and raw["failed_windows"].value == 0  # 30 days + edge probe
    # Again: nothing new, no new statement version.
    again = _materialize(instance, resources, "2025-11", account)
    meta = next(
        m for m in again.get_asset_materialization_events() if m.asset_key == monthly_statement.key
    ).materialization.metadata
    assert meta["publish"].value == "unchanged" and meta["version"].value == 1
    new_rows = next(
        m for m in again.get_asset_materialization_events() if m.asset_key == raw_transactions.key
    ).materialization.metadata
    assert new_rows["new_rows"].value == 0


def test_balance_rolls_forward_across_months(
    recent_sim: SimulatorServer, instance: dg.DagsterInstance, resources: dict
) -> None:
    account = account_ids(recent_sim)[1]
    for month in ("2025-11", "2025-12"):
        assert _materialize(instance, resources, month, account).success
    exports = resources["ledger"].exports() / account
    november = json.loads((exports / "2025-11" / "v1" / "statement.json").read_text())
    december = json.loads((exports / "2025-12" / "v1" / "statement.json").read_text())
    assert Decimal(november["closing_balance"]) == Decimal(december["opening_balance"])
    assert december["reconciliation"]["status"] == "RECONCILED"


@pytest.mark.parametrize(
    ("when", "expected_month"),
    [
        (datetime(2026, 3, 2, 6, tzinfo=UTC), "2026-02"),
        (datetime(2026, 1, 2, 6, tzinfo=UTC), "2025-12"),
    ],
)
def test_monthly_close_requests_previous_month_for_every_account(
    recent_sim: SimulatorServer,
    instance: dg.DagsterInstance,
    when: datetime,
    expected_month: str,
) -> None:
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=when)
    requests = monthly_close_schedule(context)
    accounts = sorted(account_ids(recent_sim))
    assert [r.partition_key for r in requests] == [
        partition_key(expected_month, a) for a in accounts
    ]
    other_hour = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when.replace(hour=7)
    )
    assert isinstance(monthly_close_schedule(other_hour), dg.SkipReason)


def test_close_day_and_hour_are_configurable(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEDGER_CLOSE_DAY", "5")
    monkeypatch.setenv("LEDGER_CLOSE_HOUR", "23")
    at = datetime(2026, 4, 5, 23, tzinfo=UTC)
    requests = monthly_close_schedule(
        dg.build_schedule_context(instance=instance, scheduled_execution_time=at)
    )
    assert requests and all(
        r.partition_key.keys_by_dimension["month"] == "2026-03" for r in requests
    )
    on_the_2nd = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 4, 2, 6, tzinfo=UTC)
    )
    assert isinstance(monthly_close_schedule(on_the_2nd), dg.SkipReason)


def test_daily_sync_rereads_recent_days_of_the_current_month(
    recent_sim: SimulatorServer, instance: dg.DagsterInstance
) -> None:
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 1, 15, 5, 30, tzinfo=UTC)
    )
    requests = daily_sync_schedule(context)
    assert len(requests) == len(account_ids(recent_sim))
    for request in requests:
        assert request.partition_key.keys_by_dimension["month"] == "2026-01"
        assert request.run_config["ops"]["raw_transactions"]["config"]["refetch_days"] == 2


def test_weekly_recheck_covers_months_closed_within_35_days(instance: dg.DagsterInstance) -> None:
    requests = weekly_recheck_schedule(
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 2, 2, 7, tzinfo=UTC)
        )
    )
    months = {r.partition_key.keys_by_dimension["month"] for r in requests}
    assert months == {"2025-12", "2026-01"}  # ended 32 days and 1 day before
    later = weekly_recheck_schedule(
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 2, 9, 7, tzinfo=UTC)
        )
    )
    assert {r.partition_key.keys_by_dimension["month"] for r in later} == {"2026-01"}
    late = weekly_recheck_schedule(
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 1, 30, 7, tzinfo=UTC)
        )
    )
    assert {r.partition_key.keys_by_dimension["month"] for r in late} == {"2025-12"}


def test_incremental_sync_fetches_only_gaps_and_recent_days(
    recent_sim: SimulatorServer, instance: dg.DagsterInstance, resources: dict
) -> None:
    account = account_ids(recent_sim)[0]
    config = {
        "ops": {
            "raw_transactions": {"config": {"refetch_days": 2}},
            "raw_activity": {"config": {"refetch_days": 2}},
        }
    }
    first = _materialize(
        instance,
        resources,
        "2026-01",
        account,
        run_config=config,
        selection=[raw_transactions, raw_activity],
    )
    assert first.success
    windows = next(
        m for m in first.get_asset_materialization_events() if m.asset_key == raw_transactions.key
    ).materialization.metadata["windows"]
    assert windows.value == 16  # Jan 1 .. the simulator now (Jan 15, 12:00), and the edge probe
    second = _materialize(
        instance,
        resources,
        "2026-01",
        account,
        run_config=config,
        selection=[raw_transactions, raw_activity],
    )
    again = next(
        m for m in second.get_asset_materialization_events() if m.asset_key == raw_transactions.key
    ).materialization.metadata["windows"]
    assert again.value <= 5  # the last two days and today (plus edge probes) are read again


def test_account_discovery_sensor_registers_new_accounts(recent_sim: SimulatorServer) -> None:
    with dg.instance_for_test() as fresh:
        context = dg.build_sensor_context(
            instance=fresh, resources={"capital": capital_for(recent_sim)}
        )
        result = account_discovery_sensor(context)
        assert isinstance(result, dg.SensorResult)
        request = result.dynamic_partitions_requests[0]
        assert sorted(request.partition_keys) == sorted(account_ids(recent_sim))
        fresh.add_dynamic_partitions(ACCOUNTS.name, list(request.partition_keys))
        assert isinstance(
            account_discovery_sensor(
                dg.build_sensor_context(
                    instance=fresh, resources={"capital": capital_for(recent_sim)}
                )
            ),
            dg.SkipReason,
        )


def test_run_failure_sensor_writes_an_alert_line(tmp_path: Path) -> None:
    @dg.op
    def broken() -> None:
        raise RuntimeError("the broker is down")

    @dg.job
    def failing_job() -> None:
        broken()

    with dg.instance_for_test() as test_instance:
        result = failing_job.execute_in_process(instance=test_instance, raise_on_error=False)
        assert not result.success
        failure = next(
            e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE
        )
        context = dg.build_run_status_sensor_context(
            sensor_name="run_failure_alert",
            dagster_event=failure,
            dagster_instance=test_instance,
            dagster_run=result.dagster_run,
            resources={"ledger": LedgerResource(export_dir=str(tmp_path))},
        ).for_run_failure()
        run_failure_alert(context)
    lines = (tmp_path / "_audit" / "alerts.jsonl").read_text().splitlines()
    alert = json.loads(lines[-1])
    assert alert["run_id"] == result.run_id and alert["job"] == "failing_job"


def test_discover_accounts_job_registers_partitions(recent_sim: SimulatorServer) -> None:
    with dg.instance_for_test() as fresh:
        result = defs.resolve_job_def("discover_accounts_job").execute_in_process(
            instance=fresh, resources={"capital": capital_for(recent_sim)}
        )
        assert result.success
        assert sorted(fresh.get_dynamic_partitions(ACCOUNTS.name)) == sorted(
            account_ids(recent_sim)
        )
