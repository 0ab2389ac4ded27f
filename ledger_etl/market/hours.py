"""Opening hours as GET /markets/{epic} gives them, so a watchdog knows when silence is normal.

`{"mon": ["00:00 - 22:00", "23:05 - 00:00"], …, "sat": [], "zone": "UTC"}`: sessions per weekday
in the given zone (only UTC is seen; another zone is not trusted and the market is then taken to
be always open, so a watchdog errs towards reconnecting, never towards silence). "00:00" as an
end means midnight at the end of that day.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _minutes(text: str) -> int:
    hours, minutes = text.strip().split(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= 1440:
        raise ValueError(f"not a time of day: {text!r}")
    return value


class OpeningHours:
    def __init__(self, raw: Any) -> None:
        self.always = True
        self._spans: list[tuple[int, int]] = []  # minutes since Monday 00:00 UTC
        if not isinstance(raw, dict) or raw.get("zone", "UTC") != "UTC":
            return
        try:
            for day, name in enumerate(_DAYS):
                for session in raw.get(name) or []:
                    start, end = (_minutes(p) for p in str(session).split("-"))
                    end = end if end > start else end + 1440
                    self._spans.append((day * 1440 + start, day * 1440 + end))
        except ValueError:
            self._spans = []
            return
        self.always = False

    def is_open(self, instant: datetime) -> bool:
        if self.always:
            return True
        instant = instant.astimezone(UTC)
        minute = instant.weekday() * 1440 + instant.hour * 60 + instant.minute
        week = 7 * 1440
        return any(a <= minute < b or a <= minute + week < b for a, b in self._spans)
