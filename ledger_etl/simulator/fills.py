"""When working orders fill: the first second the price path crosses each order's level.

Orders of one market share its price path, so the path is computed once per market and step,
and every pending order of that market is checked against it: settling a day for hundreds of
orders costs a few evaluations of the path per market and second step, not per order.

The path is sampled every `SCAN_SECONDS` on a grid shared by the market's orders; at the first
sample that crosses an order's level, the seconds since the previous sample are searched for
the first crossing. A crossing shorter than the step, between two samples, can be missed.
Closed markets never fill anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from ledger_etl.simulator.events import OrderLife
from ledger_etl.simulator.prices import PriceSeries

SCAN_SECONDS = 10


@dataclass(frozen=True)
class Pending:
    """An order and the window of whole epoch seconds [first, last] to search."""

    order: OrderLife
    first: int
    last: int


def _quote(series: PriceSeries, second: int) -> tuple[int, int] | None:
    """(bid, ask) in ticks at `second`, None while the market is shut."""
    if not series.hours.is_open(second):
        return None
    mid = series.raw_mid_ticks(second)
    return series.bid_ticks(mid), series.ask_ticks(mid)


def crossed(order: OrderLife, level: Decimal, quote: tuple[int, int] | None) -> bool:
    """A BUY LIMIT fills at an offer at or below its level, a BUY STOP at or above; a SELL
    LIMIT at a bid at or above its level, a SELL STOP at or below. `level` is in ticks."""
    if quote is None:
        return False
    bid, ask = quote
    if order.direction == "BUY":
        return ask <= level if order.order_type == "LIMIT" else ask >= level
    return bid >= level if order.order_type == "LIMIT" else bid <= level


def first_crossings(series_of: dict[str, PriceSeries], pending: list[Pending]) -> dict[str, int]:
    """dealId → the first second in its window at which the order's level is crossed."""
    found: dict[str, int] = {}
    by_market: dict[str, list[Pending]] = defaultdict(list)
    for item in pending:
        if item.first <= item.last:
            by_market[item.order.epic].append(item)
    for epic, items in by_market.items():
        series = series_of[epic]
        levels = {i.order.deal_id: i.order.level * series.scale for i in items}
        t, end = min(i.first for i in items) - 1, max(i.last for i in items)
        while items and t < end:
            t = min(t + SCAN_SECONDS, end)
            sample = _quote(series, t)
            waiting = []
            for item in items:
                probe = min(t, item.last)
                if probe < item.first:
                    waiting.append(item)
                    continue
                level = levels[item.order.deal_id]
                quote = sample if probe == t else _quote(series, probe)
                if crossed(item.order, level, quote):
                    window = range(max(item.first, t - SCAN_SECONDS + 1), probe + 1)
                    found[item.order.deal_id] = next(
                        s for s in window if crossed(item.order, level, _quote(series, s))
                    )
                elif item.last > t:
                    waiting.append(item)
            items = waiting
    return found
