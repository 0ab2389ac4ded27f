"""What the trading domain adds to the code location."""

from ledger_etl.defs.trading.assets import exposure_snapshot, trading_poll
from ledger_etl.defs.trading.automation import (
    trading_alert_sensor,
    trading_exposure_job,
    trading_poll_job,
    trading_poll_schedule,
)
from ledger_etl.defs.trading.checks import CHECKS

ASSETS = [trading_poll, exposure_snapshot]
JOBS = [trading_poll_job, trading_exposure_job]
SCHEDULES = [trading_poll_schedule]
SENSORS = [trading_alert_sensor]
__all__ = ["ASSETS", "CHECKS", "JOBS", "SCHEDULES", "SENSORS"]
