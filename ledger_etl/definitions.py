"""The Dagster code location: assembly only (see ledger_etl/defs/)."""

from __future__ import annotations

from typing import Any

import dagster as dg

from ledger_etl.defs.history.assets import (
    ledger_entries,
    monthly_statement,
    raw_activity,
    raw_transactions,
)
from ledger_etl.defs.history.automation import (
    account_discovery_sensor,
    close_month_job,
    daily_sync_schedule,
    discover_accounts_job,
    monthly_close_schedule,
    run_failure_alert,
    sync_job,
    weekly_recheck_schedule,
)
from ledger_etl.defs.history.checks import CHECKS
from ledger_etl.defs.market.assets import price_bars
from ledger_etl.defs.market.checks import CHECKS as MARKET_CHECKS
from ledger_etl.defs.market_extras import assets as extras
from ledger_etl.defs.resources import resources_from_environment
from ledger_etl.defs.scale import executor_from_environment
from ledger_etl.defs.trading import definitions as trading


def build_definitions(resources: dict[str, Any] | None = None) -> dg.Definitions:
    """The definitions with `resources` (default: configured from the environment, see
    `resources_from_environment`)."""
    return dg.Definitions(
        assets=[
            *extras.MARKET_EXTRAS_ASSETS,
            raw_transactions,
            raw_activity,
            ledger_entries,
            monthly_statement,
            price_bars,
            *trading.ASSETS,
        ],
        asset_checks=[*CHECKS, *MARKET_CHECKS, *extras.MARKET_EXTRAS_CHECKS, *trading.CHECKS],
        jobs=[
            close_month_job,
            sync_job,
            discover_accounts_job,
            *extras.MARKET_EXTRAS_JOBS,
            *trading.JOBS,
        ],
        schedules=[
            monthly_close_schedule,
            daily_sync_schedule,
            weekly_recheck_schedule,
            *extras.MARKET_EXTRAS_SCHEDULES,
            *trading.SCHEDULES,
        ],
        sensors=[account_discovery_sensor, run_failure_alert, *trading.SENSORS],
        resources=resources if resources is not None else resources_from_environment(),
        executor=executor_from_environment(),  # Dagster's default unless LEDGER_EXECUTOR=celery
    )


defs = build_definitions()
