"""REST backfill of price bars: only the gaps of the store, in windows the API accepts.

GET /prices takes both ends inclusive and refuses a window spanning `max` x resolution or more
(`error.invalid.max.daterange`), so one request asks for at most 1000 bars: `from` = a bar open,
`to` = the open of the 1000th bar after it. A 404 (`error.prices.not-found`, or none) means the
market had no bar there: the window is covered all the same. Every answered window is recorded
as coverage, so a re-run asks for nothing (idempotent) and a bar is either stored or known absent.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.errors import ApiError
from ledger_etl.intervals import Window, format_request_datetime
from ledger_etl.market.bars import (
    RESOLUTIONS,
    BarError,
    BarUpdate,
    bar_gaps,
    from_rest,
    record_coverage,
    store_updates,
)

MAX_BARS = 1000
_MONDAY = datetime(1970, 1, 5, tzinfo=UTC)  # bars (WEEK ones too) are aligned to Mondays


@dataclass
class BackfillReport:
    requests: int = 0
    bars: int = 0
    changed: int = 0
    rejected: list[str] = field(default_factory=list)


def align_down(instant: datetime, resolution: str) -> datetime:
    seconds = RESOLUTIONS[resolution]
    offset = int((instant - _MONDAY).total_seconds()) % seconds
    return instant.replace(microsecond=0) - timedelta(seconds=offset)


def align_up(instant: datetime, resolution: str) -> datetime:
    down = align_down(instant, resolution)
    return down if down == instant else down + timedelta(seconds=RESOLUTIONS[resolution])


def request_windows(window: Window, resolution: str) -> list[Window]:
    """`window` (bar open times, half-open) cut into pieces of at most MAX_BARS aligned bars."""
    step = timedelta(seconds=RESOLUTIONS[resolution])
    start, end = align_up(window.start, resolution), align_up(window.end, resolution)
    out = []
    while start < end:
        stop = min(end, start + MAX_BARS * step)
        out.append(Window(start, stop))
        start = stop
    return out


def fetch_window(
    client: CapitalClient, epic: str, resolution: str, window: Window
) -> list[BarUpdate]:
    """One GET /prices for the bars opening in `window` (aligned, ≤ MAX_BARS bars)."""
    step = timedelta(seconds=RESOLUTIONS[resolution])
    params = {
        "resolution": resolution,
        "max": str(MAX_BARS),
        "from": format_request_datetime(window.start),
        "to": format_request_datetime(window.end - step),
    }
    try:
        body = client.request("GET", f"/prices/{epic}", params=params, expect_key="prices").body
    except ApiError as exc:
        if exc.status == 404 and exc.error_code in (None, "", "error.prices.not-found"):
            return []
        raise
    rows = body.get("prices")
    if not isinstance(rows, list):
        raise BarError(f"GET /prices/{epic}: 'prices' is not a list")
    return [from_rest(epic, resolution, row) for row in rows if isinstance(row, dict)]


def backfill(
    client: CapitalClient,
    engine: Engine,
    epic: str,
    resolution: str,
    window: Window,
    *,
    now: datetime | None = None,
    prefetch: int = 3,
) -> BackfillReport:
    """Fill the gaps of `window` over REST; bars that have not closed by `now` are left out."""
    report = BackfillReport()
    step = timedelta(seconds=RESOLUTIONS[resolution])
    now = now or client.server_time()
    last_open = align_down(now, resolution) - step  # the last bar that has closed
    if window.end > last_open + step:
        if window.start > last_open:
            return report
        window = Window(window.start, last_open + step)
    pieces = [
        piece
        for gap in bar_gaps(engine, epic, resolution, window)
        for piece in request_windows(gap, resolution)
        if piece.end <= last_open + step
    ]
    # Requests run ahead of the store (up to `prefetch` in flight, paced by the client's rate
    # limiter), so storing one answer overlaps waiting for the next: the pace is the API's.
    with ThreadPoolExecutor(max_workers=prefetch, thread_name_prefix="prices") as pool:
        futures = [
            pool.submit(fetch_window, client, epic, resolution, p) for p in pieces[:prefetch]
        ]
        for index, piece in enumerate(pieces):
            updates = futures[index].result()
            if index + prefetch < len(pieces):
                following = pieces[index + prefetch]
                futures.append(pool.submit(fetch_window, client, epic, resolution, following))
            report.requests += 1
            kept: list[BarUpdate] = []
            for u in updates:  # one pass: a membership test per bar would be quadratic
                if piece.contains(u.t):
                    kept.append(u)
                else:
                    report.rejected.append(f"{u.t.isoformat()} outside {piece}")
            seen = datetime.now(UTC).replace(microsecond=0)
            report.changed += store_updates(engine, kept, seen)
            report.bars += len(kept)
            record_coverage(engine, epic, resolution, piece, seen)
    return report
