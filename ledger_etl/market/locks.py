"""One writer at a time for a market-extras record, on both backends.

SQLite transactions here begin IMMEDIATE (see `ledger.db`), so writers already queue. On
PostgreSQL two pollers reading "what is stored" at once would both insert the same new list
or template version; a transaction-scoped advisory lock per record kind makes the second wait
and then see the first one's rows.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, text


def serialize_writers(conn: Connection, kind: str) -> None:
    """Hold the lock of `kind` until the surrounding transaction ends (PostgreSQL only)."""
    if conn.dialect.name != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(f"ledger_etl.market.{kind}".encode()).digest()[:8], "big")
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key - (1 << 63)})
