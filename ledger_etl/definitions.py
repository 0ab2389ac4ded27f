"""The Dagster code location: assembly only (see ledger_etl/defs/)."""

from __future__ import annotations

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
from ledger_etl.defs.resources import CapitalApiResource, LedgerResource

defs = dg.Definitions(
    assets=[raw_transactions, raw_activity, ledger_entries, monthly_statement],
    asset_checks=CHECKS,
    jobs=[close_month_job, sync_job, discover_accounts_job],
    schedules=[monthly_close_schedule, daily_sync_schedule, weekly_recheck_schedule],
    sensors=[account_discovery_sensor, run_failure_alert],
    resources={"capital": CapitalApiResource(), "ledger": LedgerResource()},
)
