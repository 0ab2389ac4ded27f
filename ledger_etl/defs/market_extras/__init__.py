"""Dagster wiring of client sentiment and watchlists (domain code in ledger_etl/market/)."""

from ledger_etl.defs.market_extras.assets import (
    MARKET_EXTRAS_ASSETS,
    MARKET_EXTRAS_CHECKS,
    MARKET_EXTRAS_JOBS,
    MARKET_EXTRAS_SCHEDULES,
)

__all__ = [
    "MARKET_EXTRAS_ASSETS",
    "MARKET_EXTRAS_CHECKS",
    "MARKET_EXTRAS_JOBS",
    "MARKET_EXTRAS_SCHEDULES",
]
