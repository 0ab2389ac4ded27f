"""Time-window arithmetic for the history endpoints; pure, no I/O.

Windows are half-open `[start, end)`, UTC-aware and whole seconds, because the API's request
format (`YYYY-MM-DDTHH:MM:SS`) cannot express anything finer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

REQUEST_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
ONE_DAY = timedelta(days=1)
ONE_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _require_aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def _whole_seconds(span: timedelta) -> bool:
    return span.microseconds == 0


def format_request_datetime(instant: datetime) -> str:
    """`2026-07-01T23:46:31`: UTC wall clock, no zone suffix, no fraction (the API's format)."""
    instant = _require_aware("instant", instant)
    if instant.microsecond:
        raise ValueError(f"request dates are whole seconds, got {instant.isoformat()}")
    return instant.strftime(REQUEST_DATE_FORMAT)


@dataclass(frozen=True, order=True)
class Window:
    """A half-open UTC interval `[start, end)` of whole seconds."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        start = _require_aware("start", self.start)
        end = _require_aware("end", self.end)
        if start.microsecond or end.microsecond:
            raise ValueError(
                f"window bounds must be whole seconds: [{start.isoformat()}, {end.isoformat()})"
            )
        if not start < end:
            raise ValueError(
                f"window start must precede end: [{start.isoformat()}, {end.isoformat()})"
            )
        # Normalise any other zone to UTC so equal instants compare and hash equal.
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    def contains(self, instant: datetime) -> bool:
        """Half-open membership: `start <= instant < end`."""
        return self.start <= instant < self.end

    def request_params(self) -> dict[str, str]:
        return {
            "from": format_request_datetime(self.start),
            "to": format_request_datetime(self.end),
        }

    def __str__(self) -> str:
        return f"[{format_request_datetime(self.start)}, {format_request_datetime(self.end)})"


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


def merge_windows(windows: Iterable[Window]) -> list[Window]:
    """Union of windows as sorted, disjoint, non-adjacent intervals."""
    merged: list[Window] = []
    for window in sorted(windows):
        if merged and window.start <= merged[-1].end:
            last = merged[-1]
            if window.end > last.end:
                merged[-1] = Window(last.start, window.end)
        else:
            merged.append(window)
    return merged


def coverage_gaps(requested: Window, covered: Iterable[Window]) -> list[Window]:
    """The parts of `requested` that no covered window reaches (overlaps and adjacency merged)."""
    clipped = [
        Window(max(w.start, requested.start), min(w.end, requested.end))
        for w in covered
        if w.end > requested.start and w.start < requested.end
    ]
    gaps: list[Window] = []
    cursor = requested.start
    for window in merge_windows(clipped):
        if window.start > cursor:
            gaps.append(Window(cursor, window.start))
        cursor = max(cursor, window.end)
    if cursor < requested.end:
        gaps.append(Window(cursor, requested.end))
    return gaps
