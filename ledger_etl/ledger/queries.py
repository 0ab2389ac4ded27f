"""Read ledger entries by account, time range and type: keyset pages and a batched stream.

The ledger's public read function for the read service and `ledger-etl export`. Pages are
ordered by `(posted_at, reference)`, the primary key's tail, so a cursor names the last row
seen and the next page starts strictly after it: no offset scans, and rows written between two
pages never make a page repeat or skip a row that was there before.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select

from ledger_etl.errors import InputError
from ledger_etl.ledger import schema as s

MAX_PAGE = 1000
STREAM_BATCH = 2000
_TYPE = re.compile(r"^[A-Z0-9_]{1,64}$")


class QueryError(InputError):
    """A bad filter or cursor; the message says which and why."""


@dataclass(frozen=True)
class EntryFilter:
    account_id: str
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive
    types: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntryRow:
    account_id: str
    posted_at: datetime
    reference: str
    transaction_type: str
    instrument: str | None
    amount: Decimal
    currency: str
    status: str | None
    ledger_account: str
    deal_id: str | None
    note: str | None
    flags: str


COLUMNS = (
    "account_id", "posted_at", "reference", "transaction_type", "instrument", "amount",
    "currency", "status", "ledger_account", "deal_id", "note", "flags",
)  # fmt: skip


def parse_types(raw: str | None) -> tuple[str, ...]:
    """`TRADE,SWAP` -> ("SWAP", "TRADE"); types are the broker's upper-case codes."""
    if not raw:
        return ()
    types = {t.strip().upper() for t in raw.split(",") if t.strip()}
    if not all(_TYPE.match(t) for t in types):
        # The value is not echoed: an error answer never reflects what the caller sent.
        raise QueryError("type must be transaction type codes (A-Z, 0-9, _) separated by commas")
    return tuple(sorted(types))


def parse_instant(raw: str | None, name: str) -> datetime | None:
    """`YYYY-MM-DD` (midnight UTC) or an ISO 8601 instant with an offset."""
    if not raw:
        return None
    text = raw.strip()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name} must be YYYY-MM-DD or an ISO 8601 instant") from None
    if value.tzinfo is None:
        if len(text) > 10:
            raise QueryError(f"{name} must carry a UTC offset (Z or +00:00) when it has a time")
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def make_filter(
    account_id: str, start: str | None, end: str | None, types: str | None
) -> EntryFilter:
    lo, hi = parse_instant(start, "from"), parse_instant(end, "to")
    if lo is not None and hi is not None and hi < lo:
        raise QueryError("to must not be before from (the range is [from, to))")
    return EntryFilter(account_id, lo, hi, parse_types(types))


def encode_cursor(row: EntryRow) -> str:
    raw = json.dumps([row.posted_at.isoformat(), row.reference], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        at, reference = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        instant = datetime.fromisoformat(at)
        if instant.tzinfo is None or not isinstance(reference, str) or len(reference) > 64:
            raise ValueError
    except (ValueError, TypeError, UnicodeError):
        raise QueryError("cursor is not one this service gave out") from None
    return instant.astimezone(UTC), reference


def _select(flt: EntryFilter, after: tuple[datetime, str] | None, limit: int) -> Any:
    e = s.ledger_entries
    query = select(*(e.c[name] for name in COLUMNS)).where(e.c.account_id == flt.account_id)
    if flt.start is not None:
        query = query.where(e.c.posted_at >= flt.start)
    if flt.end is not None:
        query = query.where(e.c.posted_at < flt.end)
    if flt.types:
        query = query.where(e.c.transaction_type.in_(flt.types))
    if after is not None:
        at, reference = after
        # `posted_at >= at` on its own lets the (account_id, posted_at) index start the scan at
        # the cursor; the OR alone would make some planners read from the first row each time.
        query = query.where(
            e.c.posted_at >= at,
            or_(e.c.posted_at > at, and_(e.c.posted_at == at, e.c.reference > reference)),
        )
    return query.order_by(e.c.posted_at, e.c.reference).limit(limit)


def page(
    engine: Engine, flt: EntryFilter, cursor: str | None = None, limit: int = 100
) -> tuple[list[EntryRow], str | None]:
    """One page and the cursor of the next (None on the last page)."""
    if not 1 <= limit <= MAX_PAGE:
        raise QueryError(f"limit must be from 1 to {MAX_PAGE}")
    after = decode_cursor(cursor) if cursor else None
    with engine.connect() as conn:
        rows = [EntryRow(*r) for r in conn.execute(_select(flt, after, limit + 1))]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(rows[-1]) if more and rows else None)


def stream(engine: Engine, flt: EntryFilter, batch: int = STREAM_BATCH) -> Iterator[EntryRow]:
    """Every matching row in order, read `batch` rows at a time (memory stays flat)."""
    after: tuple[datetime, str] | None = None
    while True:
        with engine.connect() as conn:
            rows = [EntryRow(*r) for r in conn.execute(_select(flt, after, batch))]
        yield from rows
        if len(rows) < batch:
            return
        after = (rows[-1].posted_at, rows[-1].reference)


def count(engine: Engine, flt: EntryFilter) -> int:
    query = _select(flt, None, 1).order_by(None).limit(None).with_only_columns(func.count())
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())
