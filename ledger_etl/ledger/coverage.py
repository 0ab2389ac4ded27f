"""Coverage reads: which parts of a range the fetch log proves were fetched whole.

Read-only, so statements, checks, the CLI and the coming read service can import it without
pulling in the write path (`ledger.ingest`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, select

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
