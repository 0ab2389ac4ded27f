"""The trading tables: snapshot rows written only on change, quotes, instrument versions, polls.

"As of T" reads take the latest complete poll at or before T and the rows whose observation span
`[observed_from, observed_to)` contains that poll's instant: the answer is what we knew then,
never a row learned later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, insert, or_, select, update

from ledger_etl.errors import InputError
from ledger_etl.ledger.schema import (
    instrument_versions,
    market_quotes,
    order_snapshots,
    position_snapshots,
    trading_polls,
)

from .instruments import InstrumentAttributes
from .snapshots import DealState


class NoSnapshotError(InputError):
    """No complete poll of the account at or before the instant asked about."""


@dataclass(frozen=True)
class SnapshotWrite:
    inserted: int
    closed: int


def _table(kind: str) -> Table:
    return position_snapshots if kind == "position" else order_snapshots


def write_snapshot(
    conn: Connection, kind: str, account_id: str, observed_at: datetime, states: list[DealState]
) -> SnapshotWrite:
    """Close the rows whose deal changed or disappeared, insert rows for new content."""
    table = _table(kind)
    current = {
        row.deal_id: (row.id, row.content_sha256)
        for row in conn.execute(
            select(table.c.id, table.c.deal_id, table.c.content_sha256).where(
                table.c.account_id == account_id, table.c.observed_to.is_(None)
            )
        )
    }
    seen = {s.deal_id: s for s in states}
    to_close = [
        row_id
        for deal_id, (row_id, sha) in current.items()
        if deal_id not in seen or seen[deal_id].content_sha256 != sha
    ]
    fresh = [s for s in states if current.get(s.deal_id, (None, None))[1] != s.content_sha256]
    for start in range(0, len(to_close), 500):
        chunk = to_close[start : start + 500]
        conn.execute(update(table).where(table.c.id.in_(chunk)).values(observed_to=observed_at))
    if fresh:
        conn.execute(
            insert(table), [_snapshot_row(kind, account_id, observed_at, s) for s in fresh]
        )
    return SnapshotWrite(inserted=len(fresh), closed=len(to_close))


def _snapshot_row(kind: str, account_id: str, observed_at: datetime, s: DealState) -> dict:
    v = s.values
    row = {
        "account_id": account_id,
        "deal_id": s.deal_id,
        "observed_from": observed_at,
        "observed_to": None,
        "content_sha256": s.content_sha256,
        "created_at": v["created_at"],
        "epic": v["epic"],
        "direction": v["direction"],
        "size": v["size"],
        "level": v["level"],
        "stop_level": v["stop_level"],
        "stop_distance": v["stop_distance"],
        "profit_level": v["profit_level"],
        "profit_distance": v["profit_distance"],
        "guaranteed_stop": v["guaranteed_stop"],
        "trailing_stop": v["trailing_stop"],
        "deal_reference": v["deal_reference"],
        "working_order_id": v["working_order_id"],
        "raw": s.raw,
    }
    if kind == "position":
        row["broker_upl"] = s.upl
    else:
        row.update(
            order_type=v["order_type"], time_in_force=v["time_in_force"], good_till=v["good_till"]
        )
    return row


def record_poll(conn: Connection, **values: Any) -> int:
    result = conn.execute(insert(trading_polls).values(**values))
    return int(result.inserted_primary_key[0])


def last_poll(conn: Connection, account_id: str, at: datetime | None = None) -> Any:
    """The latest complete poll of the account (at or before `at`), or None."""
    query = select(trading_polls).where(
        trading_polls.c.account_id == account_id, trading_polls.c.status == "complete"
    )
    if at is not None:
        query = query.where(trading_polls.c.observed_at <= at)
    return conn.execute(query.order_by(trading_polls.c.observed_at.desc()).limit(1)).first()


def poll_at(conn: Connection, account_id: str, at: datetime | None) -> Any:
    poll = last_poll(conn, account_id, at)
    if poll is None:
        when = f"at or before {at.isoformat()}" if at else "yet"
        raise NoSnapshotError(f"account {account_id} has no complete snapshot {when}")
    return poll


def rows_as_of(conn: Connection, kind: str, account_id: str, instant: datetime) -> list[Any]:
    table = _table(kind)
    query = select(table).where(
        table.c.account_id == account_id,
        table.c.observed_from <= instant,
        or_(table.c.observed_to.is_(None), table.c.observed_to > instant),
    )
    return list(conn.execute(query.order_by(table.c.created_at, table.c.deal_id)))


# --- quotes ---


def write_quotes(
    conn: Connection, observed_at: datetime, quotes: Mapping[str, tuple[Decimal, Decimal, Any, str]]
) -> int:
    """Store (bid, offer, status, source) per epic when it differs from the latest stored."""
    if not quotes:
        return 0
    latest = latest_quotes(conn, quotes.keys(), observed_at)
    rows = [
        {
            "epic": epic,
            "observed_at": observed_at,
            "bid": bid,
            "offer": offer,
            "market_status": status,
            "source": source,
        }
        for epic, (bid, offer, status, source) in quotes.items()
        if latest.get(epic, (None, None))[:2] != (bid, offer)
    ]
    if rows:
        conn.execute(insert(market_quotes), rows)
    return len(rows)


def latest_quotes(
    conn: Connection, epics: Iterable[str], at: datetime
) -> dict[str, tuple[Decimal, Decimal, datetime]]:
    """(bid, offer, observed_at) per epic: the latest quote at or before `at`."""
    found: dict[str, tuple[Decimal, Decimal, datetime]] = {}
    q = market_quotes.c
    for epic in sorted(set(epics)):
        row = conn.execute(
            select(q.bid, q.offer, q.observed_at)
            .where(q.epic == epic, q.observed_at <= at)
            .order_by(q.observed_at.desc())
            .limit(1)
        ).first()
        if row is not None:
            found[epic] = (row.bid, row.offer, row.observed_at)
    return found


# --- instrument master ---


def upsert_instruments(
    conn: Connection, observed_at: datetime, attributes: Iterable[InstrumentAttributes]
) -> int:
    """Start a new version for each instrument whose attributes changed; returns how many."""
    t = instrument_versions.c
    written = 0
    attributes = list(attributes)
    wanted = sorted({a.instrument_id for a in attributes})
    known: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        rows = conn.execute(
            select(t.instrument_id, t.attributes_sha256).where(
                t.instrument_id.in_(wanted[start : start + 500]), t.valid_to.is_(None)
            )
        )
        known.update({r.instrument_id: r.attributes_sha256 for r in rows})
    for attrs in attributes:
        current_sha = known.get(attrs.instrument_id)
        sha = attrs.sha256()
        if current_sha == sha:
            continue
        if current_sha is not None:
            conn.execute(
                update(instrument_versions)
                .where(t.instrument_id == attrs.instrument_id, t.valid_to.is_(None))
                .values(valid_to=observed_at)
            )
        conn.execute(
            insert(instrument_versions).values(
                instrument_id=attrs.instrument_id,
                valid_from=observed_at,
                valid_to=None,
                epic=attrs.epic,
                name=attrs.name,
                symbol=attrs.symbol,
                asset_class=attrs.asset_class,
                currency=attrs.currency,
                lot_size=attrs.lot_size,
                margin_factor=attrs.margin_factor,
                margin_factor_unit=attrs.margin_factor_unit,
                guaranteed_stop_allowed=attrs.guaranteed_stop_allowed,
                dealing_rules=attrs.dealing_rules,
                external_ids=attrs.external_ids,
                attributes_sha256=sha,
            )
        )
        written += 1
    return written


def instruments_as_of(conn: Connection, epics: Iterable[str], at: datetime) -> dict[str, Any]:
    """epic -> the instrument version valid at `at`."""
    t = instrument_versions.c
    wanted = sorted(set(epics))
    if not wanted:
        return {}
    rows = conn.execute(
        select(instrument_versions).where(
            t.epic.in_(wanted),
            t.valid_from <= at,
            or_(t.valid_to.is_(None), t.valid_to > at),
        )
    )
    return {row.epic: row for row in rows}


def current_instruments(conn: Connection) -> list[Any]:
    t = instrument_versions.c
    return list(
        conn.execute(select(instrument_versions).where(t.valid_to.is_(None)).order_by(t.epic))
    )
