"""The bars a chart template needs: the (epic, resolution, [from, to)) set to backfill.

Per resolution, the lookback is the longest any chart at that resolution asks for (its own
`lookback_bars`, else the template's, else 300) plus the warm-up of its indicators (an EMA of
200 needs 200 bars before its first plotted value). Charts that name an epic need only that
epic; a chart without one shows any instrument of the universe, so it needs them all. Ranges end
at the open of the bar in progress: only closed bars are planned (a bar is final only after its
close). Spans are calendar time; a market's closed hours simply hold no bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger_etl.market.templates import DEFAULT_LOOKBACK_BARS

RESOLUTION_SECONDS: dict[str, int] = {
    "MINUTE": 60, "MINUTE_5": 300, "MINUTE_15": 900, "MINUTE_30": 1_800, "HOUR": 3_600,
    "HOUR_4": 14_400, "DAY": 86_400, "WEEK": 604_800,
}  # fmt: skip
_MONDAY = 4 * 86_400  # 1970-01-05T00:00Z: WEEK bars open on Mondays


@dataclass(frozen=True)
class BarRange:
    """Bars of `epic` at `resolution` whose open time lies in [start, end)."""

    epic: str
    resolution: str
    start: datetime
    end: datetime
    bars: int


def warm_up(indicator: dict[str, Any]) -> int:
    """Bars an indicator consumes before its first value."""
    params, kind = indicator.get("params", {}), indicator["type"]
    if kind in ("SMA", "EMA"):
        return int(params["period"])
    if kind in ("RSI", "ATR"):
        return int(params.get("period", 14)) + 1
    if kind == "MACD":
        return int(params.get("slow", 26)) + int(params.get("signal", 9))
    if kind == "BOLLINGER":
        return int(params.get("period", 20))
    return 0  # VWAP restarts at its anchor


def bar_open(instant: datetime, resolution: str) -> datetime:
    """The open time of the bar of `resolution` holding `instant`."""
    seconds = RESOLUTION_SECONDS[resolution]
    t = int(instant.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(t - (t - _MONDAY) % seconds, UTC)


def lookback_by_resolution(document: dict[str, Any]) -> dict[str, tuple[int, bool, set[str]]]:
    """resolution -> (bars, needs the whole universe, fixed epics)."""
    default = int(document.get("lookback_bars", DEFAULT_LOOKBACK_BARS))
    indicators = {i["id"]: i for i in document.get("indicators", [])}
    needs = {r: (default, False, set()) for r in document["resolutions"]}
    used: set[str] = set()
    for chart in document["layout"]["charts"]:
        resolution = chart["resolution"]
        bars = int(chart.get("lookback_bars", default)) + max(
            (warm_up(indicators[i]) for i in chart.get("indicators", [])), default=0
        )
        previous, universe, fixed = needs[resolution] if resolution in used else (0, False, set())
        used.add(resolution)
        if "epic" in chart:
            fixed = fixed | {chart["epic"]}
        else:
            universe = True
        needs[resolution] = (max(previous, bars), universe, fixed)
    for resolution in needs:
        if resolution not in used:
            needs[resolution] = (default, True, set())
    return needs


def plan_backfill(document: dict[str, Any], epics: Sequence[str], now: datetime) -> list[BarRange]:
    """Every (epic, resolution, [start, end)) the template's charts need at `now`."""
    plan: list[BarRange] = []
    for resolution, (bars, universe, fixed) in lookback_by_resolution(document).items():
        end = bar_open(now, resolution)
        start = end - timedelta(seconds=RESOLUTION_SECONDS[resolution] * bars)
        chosen = list(epics) if universe else [e for e in epics if e in fixed]
        chosen += [e for e in sorted(fixed) if e not in chosen]
        plan.extend(BarRange(epic, resolution, start, end, bars) for epic in chosen)
    return plan
