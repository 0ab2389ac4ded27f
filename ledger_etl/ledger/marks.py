"""Skipping unchanged rows before normalizing them: what makes a no-op re-ingest cheap.

In steady state almost every ingest re-reads rows the ledger holds already. A ledger row follows
from its raw row, the chart of accounts, the account's currency and the normalization code; when
the raw row is byte-for-byte the stored one and those three are what the stored rows were made
with, normalizing, staging and merging it again would change nothing. The ingest then only
hashes each row's JSON and compares it with the stored raw row's hash.

"What the stored rows were made with" is the account's normalization mark: a fingerprint of the
chart's type mapping, the currency and the source of `ledger/normalize.py`, written when the
account's first rows are stored (and by a rebuild of all its rows). A row stored or changed under
another fingerprint clears the mark (NULL: mixed), and every row then takes the full path again,
which compares normalized content, as before. A ledger from before this mark has none: the full
path, until a rebuild of the account sets it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from pathlib import Path

from sqlalchemy import Connection, and_, func, insert, select, update

from ledger_etl.ledger import normalize
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.chart import ChartOfAccounts
from ledger_etl.ledger.normalize import storable_json

ABSENT = object()


@cache
def _code_digest() -> str:
    return hashlib.sha256(Path(normalize.__file__).read_bytes()).hexdigest()


def fingerprint(chart: ChartOfAccounts, currency: str | None) -> str:
    """What a ledger row depends on besides its raw row."""
    basis = json.dumps([sorted(chart.types.items()), currency, _code_digest()])
    return hashlib.sha256(basis.encode()).hexdigest()


def read_mark(conn: Connection, account_id: str) -> object:
    """The account's stored fingerprint, None when mixed, `ABSENT` when it has no mark."""
    m = s.normalization_marks
    row = conn.execute(select(m.c.fingerprint).where(m.c.account_id == account_id)).first()
    return ABSENT if row is None else row[0]


def unchanged_rows(
    conn: Connection, account_id: str, rows: Sequence[tuple[int, str, str, datetime]]
) -> tuple[set[int], int]:
    """Of `rows` (index, reference, raw JSON, timestamp): the indexes whose raw JSON equals the
    stored raw row's (by sha256), and how many of those are flagged in the ledger. The stored
    rows are found through the ledger's (account, time) index over the rows' time span."""
    if not rows:
        return set(), 0
    e, r = s.ledger_entries, s.raw_transactions
    stamps = [row[3] for row in rows]
    stored = {
        reference: (digest, flags != "")
        for reference, digest, flags in conn.execute(
            select(r.c.reference, r.c.row_sha256, e.c.flags)
            .select_from(e)
            .join(r, and_(r.c.account_id == e.c.account_id, r.c.reference == e.c.reference))
            .where(
                e.c.account_id == account_id,
                e.c.posted_at >= min(stamps),
                e.c.posted_at <= max(stamps),
            )
        )
    }
    if not stored:
        return set(), 0
    sha256 = hashlib.sha256
    get = stored.get
    same: set[int] = set()
    flagged = 0
    for index, reference, raw, _ in rows:
        found = get(reference)
        if found is not None and found[0] == sha256(storable_json(raw).encode()).digest():
            same.add(index)
            flagged += found[1]
    return same, flagged


def has_rows(conn: Connection, account_id: str) -> bool:
    """Whether the ledger holds any ledger or raw transaction row of the account."""
    for table in (s.ledger_entries, s.raw_transactions):
        query = select(table.c.reference).where(table.c.account_id == account_id).limit(1)
        if conn.execute(query).first() is not None:
            return True
    return False


def after_write(
    conn: Connection, account_id: str, mark: object, current: str, *, first: bool, wrote: bool
) -> None:
    """Keep the mark true: set on an account's first rows, cleared when rows are written under
    another fingerprint. Nothing is written when nothing changes."""
    m = s.normalization_marks
    if mark is ABSENT:
        if first and wrote:
            conn.execute(insert(m).values(account_id=account_id, fingerprint=current))
    elif mark is not None and mark != current and wrote:
        conn.execute(update(m).where(m.c.account_id == account_id).values(fingerprint=None))


def set_mark(conn: Connection, account_id: str, current: str) -> None:
    """After every stored row of the account was normalized under `current` (a full rebuild)."""
    m = s.normalization_marks
    if read_mark(conn, account_id) is ABSENT:
        conn.execute(insert(m).values(account_id=account_id, fingerprint=current))
    else:
        conn.execute(update(m).where(m.c.account_id == account_id).values(fingerprint=current))


def covers_account(conn: Connection, account_id: str, start: datetime, end: datetime) -> bool:
    """Whether `[start, end)` holds every ledger row of the account."""
    e = s.ledger_entries
    outside = conn.execute(
        select(func.count()).where(
            e.c.account_id == account_id, (e.c.posted_at < start) | (e.c.posted_at >= end)
        )
    ).scalar_one()
    return outside == 0
