"""Wire formats of the Capital.com API: how timestamps and amounts look on the wire.

Requests take `YYYY-MM-DDTHH:MM:SS` (UTC, no zone, no fraction). History rows carry
`YYYY-MM-DDTHH:MM:SS.mmm`; a Java-style formatter drops the fraction when it is zero, so some rows
arrive without milliseconds, as the reference warns.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

_REQUEST_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


def parse_request_datetime(value: str) -> datetime | None:
    """Parse a query date exactly as the API accepts it; None when the API would reject it."""
    if not _REQUEST_DATE.match(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def format_request_datetime(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def format_row_datetime(instant: datetime) -> str:
    """`2022-01-17T15:09:47.344`; the fraction is left out when it is exactly zero."""
    naive = instant.astimezone(UTC).replace(tzinfo=None) if instant.tzinfo else instant
    millis = naive.microsecond // 1000
    base = naive.strftime("%Y-%m-%dT%H:%M:%S")
    return base if millis == 0 else f"{base}.{millis:03d}"


def format_local_datetime(instant: datetime, offset_hours: int) -> str:
    """The local twin of a UTC timestamp (`date` beside `dateUTC`)."""
    from datetime import timedelta

    return format_row_datetime(instant.astimezone(UTC) + timedelta(hours=offset_hours))


def format_size(amount: Decimal) -> str:
    """Transaction `size` strings look like Java doubles: `20.0`, `-80.43`, `4.08`."""
    text = format(amount.normalize(), "f")
    if "." not in text:
        text += ".0"
    return text
