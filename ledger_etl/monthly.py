"""Month-by-month work, shared by the Dagster assets, schedules and the demo (no Dagster here).

A month is `[first day 00:00 UTC, first day of the next month)`, keyed `YYYY-MM`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.errors import InputError
from ledger_etl.intervals import Window, merge_windows
from ledger_etl.ledger.coverage import stored_gaps
from ledger_etl.ledger.db import upgrade
from ledger_etl.sync import SyncReport, sync_range

_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")  # ASCII digits only


class MonthError(InputError):
    """A month that is not `YYYY-MM`."""


def month_bounds(month: str) -> tuple[datetime, datetime]:
    match = _MONTH.match(month)
    if not match or not 1900 <= int(match.group(1)) <= 9998:
        raise MonthError(f"months are YYYY-MM from 1900-01 to 9998-12, got {month[:80]!r}")
    start = datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC)
    return start, next_month(start)


def next_month(start: datetime) -> datetime:
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def previous_month_key(now: datetime) -> str:
    first = now.astimezone(UTC).replace(day=1)
    return f"{(first - timedelta(days=1)):%Y-%m}"


def month_key(instant: datetime) -> str:
    return f"{instant.astimezone(UTC):%Y-%m}"


def months_closed_within(now: datetime, days: int) -> list[str]:
    """Months whose end lies in `(now - days, now]`, oldest first."""
    found = []
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while True:
        previous = (start - timedelta(days=1)).replace(day=1)
        if start <= now - timedelta(days=days):
            break
        found.append(f"{previous:%Y-%m}")
        start = previous
    return list(reversed(found))


def incremental_ranges(
    engine: Engine, start: datetime, end: datetime, refetch_days: int
) -> Callable[[str, str, datetime], list[Window]]:
    """What to fetch of `[start, end)`: the stored gaps, plus the last `refetch_days` days again
    (rows can arrive late), never past the server's now."""

    def plan(account_id: str, endpoint: str, server_now: datetime) -> list[Window]:
        upper = min(end, server_now.replace(microsecond=0))
        if upper <= start:
            return []
        gaps = stored_gaps(engine, account_id, endpoint, start, upper)
        recent_start = max(
            start, (upper - timedelta(days=refetch_days)).replace(hour=0, minute=0, second=0)
        )
        wanted = [*gaps, Window(recent_start, upper)] if recent_start < upper else gaps
        return merge_windows(wanted)

    return plan


def sync_month(
    client: CapitalClient,
    engine: Engine,
    account_id: str,
    month: str,
    endpoints: Sequence[str],
    *,
    refetch_days: int | None = None,
    run_params: dict[str, Any] | None = None,
) -> SyncReport:
    """Fetch and store one account's month (or, with `refetch_days`, only what is missing or
    recent)."""
    start, end = month_bounds(month)
    upgrade(engine)
    ranges = incremental_ranges(engine, start, end, refetch_days) if refetch_days else None
    return sync_range(
        client,
        engine,
        start,
        end,
        [account_id],
        endpoints=endpoints,
        ranges=ranges,
        kind="month",
        run_params={"month": month, **(run_params or {})},
    )


def sync_reconciliation_tail(
    client: CapitalClient,
    engine: Engine,
    account_id: str,
    month: str,
    run_params: dict[str, Any] | None = None,
) -> SyncReport | None:
    """Transactions from the month's end up to now, as far as not yet stored: the broker
    balance observed now can only be rolled back to the month's end over a complete tail."""
    _, end = month_bounds(month)
    now = client.server_time()
    if end >= now:
        return None
    return sync_range(
        client,
        engine,
        end,
        now.replace(microsecond=0),
        [account_id],
        endpoints=["transactions"],
        ranges=incremental_ranges(engine, end, now.replace(microsecond=0), 0),
        kind="tail",
        run_params={"month": month, **(run_params or {})},
    )
