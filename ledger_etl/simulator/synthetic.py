"""Synthetic markets `SYN01`, `SYN02`, … for stream and load tests that need more epics than the
catalog lists (the broker's limit is 40 per stream connection).

They have price paths, bars, GET /prices and the stream like any catalog market, but they are not
listed by /markets, navigation or watchlists, and no account history uses them. They exist only
when `SimulatorConfig.extra_markets` asks for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ledger_etl.simulator.catalog import (
    ALWAYS_HOURS,
    EU_INDEX_HOURS,
    FX_HOURS,
    METALS_HOURS,
    US_INDEX_HOURS,
    MarketData,
    _make,
)
from ledger_etl.simulator.prices import PriceSeries, WeeklyHours, price_history

# (type, price, spread, hours): a mix of always-open and session markets.
_TEMPLATES = (
    ("CRYPTOCURRENCIES", "3000.00", "3.00", ALWAYS_HOURS),
    ("CURRENCIES", "1.25000", "0.00008", FX_HOURS),
    ("INDICES", "7500.0", "1.0", US_INDEX_HOURS),
    ("COMMODITIES", "30.000", "0.020", METALS_HOURS),
    ("INDICES", "4200.0", "1.0", EU_INDEX_HOURS),
)


def synthetic_epic(index: int) -> str:
    return f"SYN{index:02d}"


class MarketDataWithExtras(MarketData):
    """The catalog's market data plus `count` synthetic markets (prices and the stream only)."""

    def __init__(self, seed: int, count: int) -> None:
        super().__init__(seed)
        self.extras = {}
        for index in range(1, count + 1):
            kind, price, spread, hours = _TEMPLATES[index % len(_TEMPLATES)]
            epic = synthetic_epic(index)
            inst = _make(epic, f"Synthetic {index}", kind, "USD", price, spread, 1, hours,
                         ("1", "1000", "1"))  # fmt: skip
            self.extras[epic] = inst
            self._series[epic] = PriceSeries(
                seed, epic, base=inst.base_price, decimals=inst.decimals, spread=inst.spread,
                band=inst.band, volume_per_minute=inst.volume_per_minute,
                hours=WeeklyHours(inst.hours),
            )  # fmt: skip

    def series(self, epic: str) -> PriceSeries:
        if epic in self.extras:
            return self._series[epic]
        return super().series(epic)

    def prices(
        self,
        epic: str,
        resolution: str | None,
        max_: str | None,
        from_: str | None,
        to: str | None,
        now: datetime,
        *,
        offset_hours: int = 2,
    ) -> dict[str, Any]:
        if epic in self.extras:
            kind = self.extras[epic].type
            return price_history(
                self._series[epic], kind, resolution, max_, from_, to, now, offset_hours
            )
        return super().prices(epic, resolution, max_, from_, to, now, offset_hours=offset_hours)


def market_data(seed: int, extra_markets: int) -> MarketData:
    return MarketDataWithExtras(seed, extra_markets) if extra_markets else MarketData(seed)
