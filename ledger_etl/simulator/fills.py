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

from bisect import bisect_left, bisect_right
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
        _scan_market(series_of[epic], items, found)
    return found


class _Side:
    """The orders of one market with one (direction, type), by level: which of them a quote
    crosses is a slice, found by bisection, so a step costs nothing for orders not crossed."""

    def __init__(self, items: list[tuple[Decimal, Pending]], upward: bool, use_bid: bool) -> None:
        self.items = sorted(items, key=lambda x: x[0])
        self.levels = [level for level, _ in self.items]
        self.upward, self.use_bid = upward, use_bid  # upward: crossed when level >= price

    def crossed(self, quote: tuple[int, int]) -> list[tuple[Decimal, Pending]]:
        price = quote[0] if self.use_bid else quote[1]
        if self.upward:
            return self.items[bisect_left(self.levels, price) :]
        return self.items[: bisect_right(self.levels, price)]


def _scan_market(series: PriceSeries, items: list[Pending], found: dict[str, int]) -> None:
    levels = {i.order.deal_id: i.order.level * series.scale for i in items}
    sides: dict[tuple[str, str], list[tuple[Decimal, Pending]]] = defaultdict(list)
    for item in items:
        sides[(item.order.direction, item.order.order_type)].append(
            (levels[item.order.deal_id], item)
        )
    # BUY LIMIT: offer <= level; BUY STOP: offer >= level; SELL LIMIT: bid >= level;
    # SELL STOP: bid <= level.
    shape = {("BUY", "LIMIT"): (True, False), ("BUY", "STOP"): (False, False),
             ("SELL", "LIMIT"): (False, True), ("SELL", "STOP"): (True, True)}  # fmt: skip
    groups = [_Side(members, *shape[key]) for key, members in sides.items()]
    open_ids = {i.order.deal_id for i in items}
    ending = sorted(items, key=lambda i: i.last)
    next_end = 0
    t, end = min(i.first for i in items) - 1, max(i.last for i in items)

    def settle_at(item: Pending, probe: int, previous: int) -> None:
        """Crossed at `probe`: pin the first crossing after the previous sample."""
        level = levels[item.order.deal_id]
        window = range(max(item.first, previous + 1), probe + 1)
        found[item.order.deal_id] = next(
            s for s in window if crossed(item.order, level, _quote(series, s))
        )
        open_ids.discard(item.order.deal_id)

    while open_ids and t < end:
        previous, t = t, min(t + SCAN_SECONDS, end)
        # Windows ending before this sample: one last look at their final second.
        while next_end < len(ending) and ending[next_end].last < t:
            item = ending[next_end]
            next_end += 1
            if item.order.deal_id in open_ids:
                if item.last >= item.first and crossed(
                    item.order, levels[item.order.deal_id], _quote(series, item.last)
                ):
                    settle_at(item, item.last, max(previous, item.first - 1))
                open_ids.discard(item.order.deal_id)
        sample = _quote(series, t)
        if sample is None:
            continue
        for group in groups:
            for _, item in group.crossed(sample):
                if item.order.deal_id in open_ids and item.first <= t <= item.last:
                    settle_at(item, t, max(previous, item.first - 1))
