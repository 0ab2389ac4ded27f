"""Request-window planning for the history endpoints; pure, no I/O.

Windows are half-open `[start, end)`, UTC-aware and whole seconds, because the API's request
format (`YYYY-MM-DDTHH:MM:SS`) cannot express anything finer.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

# The interval type and its arithmetic live in the neutral `ledger_etl.intervals`; re-exported
# here because request planning is where the client meets them.
from ledger_etl.intervals import (
    REQUEST_DATE_FORMAT,
    Window,
    coverage_gaps,
    format_request_datetime,
    merge_windows,
)

__all__ = [
    "ONE_DAY",
    "ONE_SECOND",
    "REQUEST_DATE_FORMAT",
    "Window",
    "bisect",
    "can_split",
    "coverage_gaps",
    "format_request_datetime",
    "merge_windows",
    "plan_windows",
]

ONE_DAY = timedelta(days=1)
ONE_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _whole_seconds(span: timedelta) -> bool:
    return span.microseconds == 0


def _floor_to_grid(instant: datetime, step: timedelta) -> datetime:
    """The latest grid point `epoch + k*step` not after `instant`."""
    return instant - (instant - _EPOCH) % step


def plan_windows(start: datetime, end: datetime, max_span: timedelta = ONE_DAY) -> list[Window]:
    """Tile `[start, end)` with windows of at most `max_span`, cut on a UTC grid.

    The grid is anchored at the Unix epoch, so with the default of one day every cut falls on a
    UTC midnight and a range starting mid-day gets a short first window up to the next midnight.
    The same instant always lands in the same window, whatever range it is planned from, which
    keeps re-runs and coverage bookkeeping comparable.
    """
    requested = Window(start, end)
    if max_span <= timedelta(0) or not _whole_seconds(max_span):
        raise ValueError(f"max_span must be a positive whole number of seconds, got {max_span}")
    windows: list[Window] = []
    cursor = requested.start
    while cursor < requested.end:
        boundary = _floor_to_grid(cursor, max_span) + max_span
        stop = min(boundary, requested.end)
        windows.append(Window(cursor, stop))
        cursor = stop
    return windows


def can_split(window: Window, min_span: timedelta = timedelta(seconds=2)) -> bool:
    """Whether `bisect` may cut the window: both halves must keep at least one whole second."""
    return window.span >= max(min_span, 2 * ONE_SECOND)


def bisect(window: Window) -> tuple[Window, Window]:
    """Cut a window in two at its middle, rounded down to a whole second."""
    if not can_split(window, 2 * ONE_SECOND):
        raise ValueError(f"window {window} is too short to split")
    half = timedelta(seconds=int(window.span.total_seconds()) // 2)
    middle = window.start + half
    return Window(window.start, middle), Window(middle, window.end)
