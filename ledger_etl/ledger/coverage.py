"""Coverage reads: which parts of a range the fetch log proves were fetched whole.

Read-only, so statements, checks, the CLI and the coming read service can import it without
pulling in the write path (`ledger.ingest`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, Engine, and_, func, select

from ledger_etl.intervals import Window, coverage_gaps
from ledger_etl.ledger import schema as s

# Rows can appear in the feed about a minute after their timestamp; a window is only taken as
# covered up to this long before the moment it was fetched.
SETTLE = timedelta(minutes=2)


def covered_windows(
    db: Engine | Connection, account_id: str, endpoint: str, start: datetime, end: datetime
) -> list[Window]:
    """Complete fetches overlapping the range; `db` may be an open connection (a caller inside a
    transaction must not open a second one: on SQLite it would wait for the first)."""
    log = s.fetch_log
    query = select(log.c.window_start, log.c.window_end, log.c.fetched_at).where(and_(
        log.c.account_id == account_id, log.c.endpoint == endpoint,
        log.c.outcome == "complete", log.c.window_end > start, log.c.window_start < end,
    ))  # fmt: skip
    if isinstance(db, Connection):
        rows = db.execute(query).all()
    else:
        with db.connect() as conn:
            rows = conn.execute(query).all()
    covered = []
    for row in rows:
        end_ = min(row.window_end, (row.fetched_at - SETTLE).replace(microsecond=0))
        if end_ > row.window_start:
            covered.append(Window(row.window_start, end_))
    return covered


def stored_gaps(
    db: Engine | Connection, account_id: str, endpoint: str, start: datetime, end: datetime
) -> list[Window]:
    """Uncovered intervals of `[start, end)`: never fetched, failed, or truncated windows."""
    return coverage_gaps(Window(start, end), covered_windows(db, account_id, endpoint, start, end))


def proven_first_movement(engine: Engine, account_id: str) -> datetime | None:
    """The account's first movement, when the ledger proves nothing came before it: the newest
    broker balance observation equals the sum of every stored transaction before it, over
    transactions coverage without a gap from the first stored one up to the observation. A
    movement missing before the first stored one would break that sum. None when unproven."""
    e, b = s.ledger_entries, s.balance_observations
    with engine.connect() as conn:
        first = conn.execute(
            select(func.min(e.c.posted_at)).where(e.c.account_id == account_id)
        ).scalar()
        observation = conn.execute(
            select(b.c.observed_at, b.c.balance)
            .where(b.c.account_id == account_id)
            .order_by(b.c.observed_at.desc(), b.c.id.desc())
            .limit(1)
        ).first()
        if first is None or observation is None:
            return None
        observed = observation.observed_at.replace(microsecond=0)
        total = conn.execute(
            select(s.money_sum(e.c.amount)).where(
                e.c.account_id == account_id, e.c.posted_at < observation.observed_at
            )
        ).scalar()
        upper = observed - SETTLE
        since = first.replace(microsecond=0)  # windows are whole seconds; rows carry ms
        if upper > since and stored_gaps(conn, account_id, "transactions", since, upper):
            return None
    if Decimal(total or 0) != Decimal(observation.balance):
        return None
    return first
