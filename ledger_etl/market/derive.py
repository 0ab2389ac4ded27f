"""Larger bars derived from smaller stored ones, and the check that compares them with the
broker's own bars wherever both exist.

A bar of resolution R opening at T (aligned to Mondays 00:00 UTC like the broker's, so WEEK bars
open on Mondays and DAY bars at 00:00 UTC) is the aggregate of the source bars opening in
[T, T + R): open of the first, close of the last, the highest high and lowest low, per price type
(bid, ask). Volume is the sum when every source bar has one. Exact: only Decimal comparisons, no
arithmetic on prices.

A derived bar exists only when it is complete: its whole span is covered in the store at the
source resolution (every source bar is final and two-sided, or the span was answered by REST with
no bar because the market was shut) and at least one source bar lies in it. A bar with a gap is
never derived, so a partial bar can never pass for a whole one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from ledger_etl.intervals import Window
from ledger_etl.market.bars import FIELDS, RESOLUTIONS, SIDES, bar_gaps, read_bars

MONDAY = datetime(1970, 1, 5, tzinfo=UTC)
DERIVABLE = tuple(RESOLUTIONS)[1:]  # every resolution above MINUTE


class DeriveError(ValueError):
    """A derivation that cannot be done (the message says why)."""


def check_pair(source: str, target: str) -> None:
    if source not in RESOLUTIONS or target not in RESOLUTIONS:
        raise DeriveError(f"unknown resolution {source!r} or {target!r}")
    small, large = RESOLUTIONS[source], RESOLUTIONS[target]
    if large <= small or large % small:
        raise DeriveError(f"{target} bars cannot be derived from {source} bars")


def align_down(instant: datetime, seconds: int) -> datetime:
    offset = int((instant - MONDAY).total_seconds()) % seconds
    return instant.replace(microsecond=0) - timedelta(seconds=offset)


def aligned(window: Window, seconds: int) -> Window:
    """The smallest window of whole target bars holding every bar opening in `window`."""
    start = align_down(window.start, seconds)
    end = align_down(window.end, seconds)
    if end < window.end:
        end += timedelta(seconds=seconds)
    return Window(start, max(end, start + timedelta(seconds=seconds)))


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One bar from source rows (oldest first), each two-sided."""
    out: dict[str, Any] = {}
    for side in SIDES:
        out[f"{side}_o"] = rows[0][f"{side}_o"]
        out[f"{side}_h"] = max(r[f"{side}_h"] for r in rows)
        out[f"{side}_l"] = min(r[f"{side}_l"] for r in rows)
        out[f"{side}_c"] = rows[-1][f"{side}_c"]
    volumes = [r["volume"] for r in rows]
    out["volume"] = None if None in volumes else sum(volumes)
    return out


def derive_bars(
    engine: Engine, epic: str, target: str, window: Window, source: str = "MINUTE"
) -> list[dict[str, Any]]:
    """Complete `target` bars opening in `window`, derived from stored `source` bars, oldest
    first; rows shaped like stored bars with source "derived" (never stored)."""
    check_pair(source, target)
    seconds = RESOLUTIONS[target]
    span = aligned(window, seconds)
    gaps = bar_gaps(engine, epic, source, span)
    by_bar: dict[datetime, list[dict[str, Any]]] = {}
    for row in read_bars(engine, epic, source, span):
        by_bar.setdefault(align_down(row["t"], seconds), []).append(row)
    step = timedelta(seconds=seconds)
    out = []
    for t, rows in sorted(by_bar.items()):
        if not window.start <= t < window.end:
            continue
        bar = Window(t, t + step)
        if any(g.start < bar.end and bar.start < g.end for g in gaps):
            continue  # not all of it is known: no derived bar rather than a partial one
        if any(not r["final"] or any(r[f] is None for f in FIELDS) for r in rows):
            continue
        out.append({"epic": epic, "resolution": target, "bar_type": "classic", "t": t,
                    **aggregate(rows), "source": "derived", "final": True,
                    "revision": None, "derived_from": source})  # fmt: skip
    return out


@dataclass
class Mismatch:
    epic: str
    resolution: str
    t: datetime
    field: str
    derived: Decimal
    broker: Decimal

    def as_dict(self) -> dict[str, str]:
        return {"epic": self.epic, "resolution": self.resolution, "t": self.t.isoformat(),
                "field": self.field, "derived": str(self.derived),
                "broker": str(self.broker)}  # fmt: skip


@dataclass
class Comparison:
    """Derived against broker bars of one epic and resolution (or several, summed)."""

    compared: int = 0
    broker_only: int = 0  # broker bars with no complete derivation (source bars missing)
    derived_only: int = 0  # derived bars the store has no broker bar for
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        return not self.mismatches

    def add(self, other: Comparison) -> None:
        self.compared += other.compared
        self.broker_only += other.broker_only
        self.derived_only += other.derived_only
        self.mismatches += other.mismatches


def compare_derived(
    engine: Engine, epic: str, target: str, window: Window, source: str = "MINUTE"
) -> Comparison:
    """Derived `target` bars against the stored broker (REST) bars of `target`, bar by bar and
    field by field (bid and ask OHLC), wherever both exist. Volume is not compared: a broker's
    volume of a long bar need not be the sum of its short ones."""
    derived = {row["t"]: row for row in derive_bars(engine, epic, target, window, source)}
    broker = {
        row["t"]: row
        for row in read_bars(engine, epic, target, window)
        if row["source"] == "rest" and row["final"]
    }
    result = Comparison()
    for t, want in sorted(broker.items()):
        got = derived.get(t)
        if got is None:
            result.broker_only += 1
            continue
        result.compared += 1
        for name in FIELDS:
            if got[name] != want[name]:
                result.mismatches.append(Mismatch(epic, target, t, name, got[name], want[name]))
    result.derived_only = len(derived.keys() - broker.keys())
    return result
