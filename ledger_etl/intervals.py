"""Half-open UTC intervals and coverage arithmetic; pure, no I/O.

Shared by every domain: the client plans request windows with them, the ledger answers coverage
with them, and the coming snapshot and bar stores use the same type. Windows are half-open
`[start, end)`, UTC-aware and whole seconds (the API's request format,
`YYYY-MM-DDTHH:MM:SS`, cannot express anything finer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

REQUEST_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


def _require_aware(name: str, value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


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
