"""The trading assets, checks, schedule and sensor in Dagster, against the simulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import pytest

from ledger_etl.definitions import defs
from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.defs.resources import LedgerResource
from ledger_etl.defs.trading.assets import exposure_snapshot, trading_poll
from ledger_etl.defs.trading.automation import trading_alert_sensor, trading_poll_schedule
from ledger_etl.defs.trading.checks import CHECKS
from tests.conftest import database_url_of, make_test_engine
from tests.dagster.conftest import capital_for


@pytest.fixture
def sqlite_engine(tmp_path, request):
    """SQLite only: both backends are covered by the trading tests; this one is about wiring."""
    return make_test_engine("sqlite", tmp_path, request)


def test_poll_and_exposure_materialize_with_checks(
    frozen_sim, sqlite_engine, tmp_path, monkeypatch
):
    account = frozen_sim.simulator.world.accounts[0].account_id
    policy = tmp_path / "policy.yaml"
    policy.write_text("require_stop: true\nmax_notional: {account: 1}\n")
    monkeypatch.setenv("TRADING_POLICY_FILE", str(policy))
    monkeypatch.setenv("LEDGER_EXPORT_DIR", str(tmp_path / "exports"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, [account])
        _run(instance, frozen_sim, sqlite_engine, tmp_path, account)


def _run(instance, frozen_sim, sqlite_engine, tmp_path, account):
    resources = {
        "capital": capital_for(frozen_sim),
        "ledger": LedgerResource(
            database_url=database_url_of(sqlite_engine), export_dir=str(tmp_path / "exports")
        ),
    }
    result = dg.materialize(
        [trading_poll, exposure_snapshot, *CHECKS],
        partition_key=account,
        instance=instance,
        resources=resources,
    )
    assert result.success
    meta = result.asset_materializations_for_node("exposure_snapshot")[0].metadata
    assert meta["positions"].value > 0 and meta["breaches"].value > 0
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "exposure_within_limits": False,
        "orders_follow_policy": False,
        "lifecycle_ties_out": True,
    }
    alerts = (tmp_path / "exports" / "_audit" / "alerts.jsonl").read_text().splitlines()
    assert {json.loads(a)["rule"] for a in alerts} >= {"require_stop", "max_notional.account"}

    context = dg.build_sensor_context(instance=instance)
    requests = trading_alert_sensor(context)
    assert [r.partition_key for r in requests] == [account]
    assert isinstance(
        trading_alert_sensor(dg.build_sensor_context(instance=instance, cursor=context.cursor)),
        dg.SkipReason,
    )
    scheduled = trading_poll_schedule(
        dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 1, 1, tzinfo=UTC)
        )
    )
    assert [r.partition_key for r in scheduled] == [account]


def test_trading_is_in_the_code_location():
    repo = defs.get_repository_def()
    assert {"trading_poll_job", "trading_exposure_job"} <= {j.name for j in repo.get_all_jobs()}
    assert repo.get_schedule_def("trading_poll_schedule").cron_schedule == "*/5 * * * *"
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {
        "instruments",
        "positions_snapshot",
        "working_orders_snapshot",
        "order_lifecycle",
        "exposure_snapshot",
    } <= keys
