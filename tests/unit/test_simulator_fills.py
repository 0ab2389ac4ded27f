"""The working-order fill scan against a second-by-second search of the same price paths."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

from ledger_etl.simulator.book import FOREVER
from ledger_etl.simulator.catalog import MarketData
from ledger_etl.simulator.events import OrderLife
from ledger_etl.simulator.fills import SCAN_SECONDS, Pending, _quote, crossed, first_crossings
from ledger_etl.simulator.prices import epoch_second

START = epoch_second(datetime(2026, 1, 14, 9, 0, tzinfo=UTC))  # a Wednesday morning


def _orders(market: MarketData, count: int) -> list[Pending]:
    rng = random.Random(7)
    pending = []
    for n in range(count):
        epic = rng.choice(("GOLD", "EURUSD", "US500", "AAPL"))  # AAPL opens at 13:30
        series = market.series(epic)
        mid = series.to_decimal(series.raw_mid_ticks(START))
        side, kind = rng.choice(("BUY", "SELL")), rng.choice(("LIMIT", "STOP"))
        away = Decimal(rng.randint(1, 40)) / 10000
        up = (side == "BUY") != (kind == "LIMIT")
        level = (mid * (1 + away if up else 1 - away)).quantize(series.to_decimal(1))
        order = OrderLife(0, f"d{n}", f"o_{n}", epic, side, Decimal(1), level, kind,
                          datetime.fromtimestamp(START, UTC), FOREVER, "WORKING", None)  # fmt: skip
        first = START + rng.randint(1, 3600)
        pending.append(Pending(order, first, first + rng.randint(0, 2 * 3600)))
    return pending


def test_fills_are_crossings_never_before_the_first_one() -> None:
    market = MarketData(42)
    pending = _orders(market, 40)
    series = {p.order.epic: market.series(p.order.epic) for p in pending}
    found = first_crossings(series, pending)
    assert 5 <= len(found) < len(pending)  # some fill, some never do
    quotes = {
        epic: {s: _quote(path, s) for s in range(START, START + 3 * 3600 + 1)}
        for epic, path in series.items()
    }
    for item in pending:
        epic, order = item.order.epic, item.order
        level = order.level * series[epic].scale
        seconds = [
            s for s in range(item.first, item.last + 1) if crossed(order, level, quotes[epic][s])
        ]
        grid = min(p.first for p in pending if p.order.epic == epic) - 1
        if order.deal_id in found:
            # A crossing, and the first since the sample before it: an earlier crossing can only
            # have lasted less than a scan step, between two samples.
            second = found[order.deal_id]
            before = grid + (second - grid - 1) // SCAN_SECONDS * SCAN_SECONDS
            assert second in seconds
            assert all(s <= before for s in seconds if s < second)
        else:
            # No crossing at a second the scan looked at: the market's sample grid, the last.
            looked = {s for s in seconds if (s - grid) % SCAN_SECONDS == 0 or s == item.last}
            assert not looked, (order.deal_id, sorted(looked)[:3])
