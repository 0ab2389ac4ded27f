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
from ledger_etl.defs.resources import resources_from_environment
from ledger_etl.defs.scale import executor_from_environment


def build_definitions(resources: dict[str, Any] | None = None) -> dg.Definitions:
    """The definitions with `resources` (default: configured from the environment, see
    `resources_from_environment`)."""
    return dg.Definitions(
        assets=[raw_transactions, raw_activity, ledger_entries, monthly_statement],
        asset_checks=CHECKS,
        jobs=[close_month_job, sync_job, discover_accounts_job],
        schedules=[monthly_close_schedule, daily_sync_schedule, weekly_recheck_schedule],
        sensors=[account_discovery_sensor, run_failure_alert],
        resources=resources if resources is not None else resources_from_environment(),
        executor=executor_from_environment(),  # Dagster's default unless LEDGER_EXECUTOR=celery
    )


defs = build_definitions()
