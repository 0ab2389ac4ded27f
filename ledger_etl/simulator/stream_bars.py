"""Bars as the stream and the truth endpoint show them: classic and heikin-ashi, bid and ask.

Every value comes from `PriceSeries.bar`, the same function behind GET /prices, so the stream,
REST and `/_sim/truth/bars` can never disagree about a closed bar. Heikin-ashi bars are computed
here from the classic ones: close = (o + h + l + c) / 4, open = the midpoint of the previous
classic bar's open and close (a non-recursive form, so any bar can be computed on its own),
high / low = the extremes of the classic high / low and the heikin-ashi open and close.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledger_etl.simulator.prices import RESOLUTIONS, Bar, PriceSeries

BAR_TYPES = ("classic", "heikin-ashi")
PRICE_TYPES = ("bid", "ask")


@dataclass(frozen=True)
class SideBar:
    """One bar of one price type, exact decimals."""

    start: int
    o: Decimal
    h: Decimal
    l: Decimal  # noqa: E741 - the wire name
    c: Decimal


def _side(series: PriceSeries, bar: Bar, price_type: str) -> SideBar:
    convert = series.bid_ticks if price_type == "bid" else series.ask_ticks
    return SideBar(
        bar.start,
        series.to_decimal(convert(bar.open)),
        series.to_decimal(convert(bar.high)),
        series.to_decimal(convert(bar.low)),
        series.to_decimal(convert(bar.close)),
    )


def side_bar(
    series: PriceSeries, start: int, resolution: str, bar_type: str, price_type: str, now: int
) -> SideBar | None:
    """The bar opening at `start` (cut at `now` if still forming), None if the market was shut."""
    seconds = RESOLUTIONS[resolution]
    bar = series.bar(start, seconds, now)
    if bar is None:
        return None
    classic = _side(series, bar, price_type)
    if bar_type == "classic":
        return classic
    previous = series.last_bar(start - seconds, seconds, now)
    before = classic if previous is None else _side(series, previous, price_type)
    close = (classic.o + classic.h + classic.l + classic.c) / 4
    open_ = (before.o + before.c) / 2
    return SideBar(start, open_, max(classic.h, open_, close), min(classic.l, open_, close), close)


def ohlc_event(
    epic: str, resolution: str, bar_type: str, price_type: str, bar: SideBar
) -> dict[str, Any]:
    """An `ohlc.event` frame; numbers are JSON numbers as on the wire (floats, exact repr)."""
    return {
        "status": "OK",
        "destination": "ohlc.event",
        "payload": {
            "resolution": resolution,
            "epic": epic,
            "type": bar_type,
            "priceType": price_type,
            "t": bar.start * 1000,
            "h": float(bar.h),
            "l": float(bar.l),
            "o": float(bar.o),
            "c": float(bar.c),
        },
    }


def truth_bars(
    series: PriceSeries, resolution: str, bar_type: str, start: int, end: int, now: int
) -> list[dict[str, Any]]:
    """Every closed bar opening in `[start, end)`: bid and ask as exact decimal strings."""
    seconds = RESOLUTIONS[resolution]
    out: list[dict[str, Any]] = []
    first = start + (-(start - 4 * 86_400) % seconds)  # aligned like PriceSeries (Mondays)
    for opened in range(first, end, seconds):
        if opened + seconds > now:
            break
        sides = [side_bar(series, opened, resolution, bar_type, p, now) for p in PRICE_TYPES]
        if sides[0] is None or sides[1] is None:
            continue
        raw = series.bar(opened, seconds, now)
        out.append(
            {
                "t": datetime.fromtimestamp(opened, UTC).isoformat().replace("+00:00", "Z"),
                "bid": _ohlc_text(sides[0]),
                "ask": _ohlc_text(sides[1]),
                "volume": None if raw is None else raw.volume,
            }
        )
    return out


def _ohlc_text(bar: SideBar) -> dict[str, str]:
    return {"o": str(bar.o), "h": str(bar.h), "l": str(bar.l), "c": str(bar.c)}
