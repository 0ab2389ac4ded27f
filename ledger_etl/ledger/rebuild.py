"""Re-derive ledger rows from the stored raw rows of a range (idempotent).

The raw tables hold every row exactly as received; normalizing them again (after a chart of
accounts change, or simply to prove the ledger follows from them) changes only what differs, and
keeps the previous version of every changed entry. A stored entry that no longer qualifies
(its account's currency became known and differs, a rule got stricter) leaves the ledger: its
raw row moves to quarantine with the reason, its last version to `entry_history`, so it is
never summed again and nothing is lost.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Engine, and_, func, select

from ledger_etl.capital.models import Transaction, parse_transaction
from ledger_etl.ledger import marks
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.chart import ChartOfAccounts
from ledger_etl.ledger.ingest import account_currency
from ledger_etl.ledger.normalize import Rejected, normalize_transaction
from ledger_etl.ledger.store import LedgerWriter, QuarantineRow, StagedTransaction


@dataclass(frozen=True)
class MonthLedger:
    entries: int
    changed: int
    quarantined: int
    digest: str  # over the range's entries' content hashes, in reference order
    total: str  # sum of amounts, exact
    removed: int = 0  # stored entries taken out of the ledger (now quarantined)


def renormalize(
    engine: Engine,
    run_id: str,
    account_id: str,
    start: datetime,
    end: datetime,
    chart: ChartOfAccounts,
) -> MonthLedger:
    raw = s.raw_transactions
    with engine.connect() as conn:
        rows = conn.execute(select(
            raw.c.reference, raw.c.raw, raw.c.window_start, raw.c.window_end,
        ).where(and_(
            raw.c.account_id == account_id, raw.c.date_utc >= start, raw.c.date_utc < end,
        ))).all()  # fmt: skip
        currency = account_currency(conn, account_id)
    staged: list[StagedTransaction] = []
    rejected: list[QuarantineRow] = []
    leaving: list[str] = []  # references of the rejected rows
    for row in rows:
        parsed = parse_transaction(json.loads(row.raw, parse_float=Decimal))
        if not isinstance(parsed, Transaction):
            rejected.append(
                QuarantineRow(
                    account_id,
                    "transactions",
                    row.raw,
                    parsed.reason,
                    row.window_start,
                    row.window_end,
                )
            )
            leaving.append(row.reference)
            continue
        normalized = normalize_transaction(account_id, parsed, chart, currency)
        if isinstance(normalized, Rejected):
            rejected.append(
                QuarantineRow(
                    account_id,
                    "transactions",
                    row.raw,
                    normalized.reason,
                    row.window_start,
                    row.window_end,
                )
            )
            leaving.append(row.reference)
            continue
        staged.append(StagedTransaction(normalized, row.raw, row.window_start, row.window_end))
    with engine.begin() as conn:
        writer = LedgerWriter(conn, run_id)
        writer.lock_account(account_id)
        counts = writer.write_transactions(staged)
        quarantined = writer.quarantine(rejected)
        removed = writer.remove_entries(account_id, leaving)
        # The account's normalization mark (ledger.marks) says what its rows were made with.
        current = marks.fingerprint(chart, currency)
        if marks.covers_account(conn, account_id, start, end):
            marks.set_mark(conn, account_id, current)
        else:
            mark = marks.read_mark(conn, account_id)
            wrote = counts.inserted + counts.changed > 0
            marks.after_write(conn, account_id, mark, current, first=False, wrote=wrote)
    return summarize(
        engine, account_id, start, end, changed=counts.changed, quarantined=quarantined,
        removed=removed,
    )  # fmt: skip


def summarize(
    engine: Engine,
    account_id: str,
    start: datetime,
    end: datetime,
    *,
    changed: int = 0,
    quarantined: int = 0,
    removed: int = 0,
) -> MonthLedger:
    e = s.ledger_entries
    where = and_(e.c.account_id == account_id, e.c.posted_at >= start, e.c.posted_at < end)
    with engine.connect() as conn:
        hashes = conn.execute(
            select(e.c.reference, e.c.row_sha256).where(where).order_by(e.c.reference)
        ).all()
        total = conn.execute(select(s.money_sum(e.c.amount)).where(where)).scalar_one()
    digest = hashlib.sha256(
        "".join(f"{r.reference}:{r.row_sha256}\n" for r in hashes).encode()
    ).hexdigest()
    return MonthLedger(len(hashes), changed, quarantined, digest, str(total or 0), removed)


def duplicate_keys(engine: Engine, account_id: str, start: datetime, end: datetime) -> int:
    """References stored more than once for the account in the range (must be 0)."""
    e = s.ledger_entries
    with engine.connect() as conn:
        dupes = select(e.c.reference).where(and_(
            e.c.account_id == account_id, e.c.posted_at >= start, e.c.posted_at < end,
        )).group_by(e.c.reference).having(func.count() > 1).subquery()  # fmt: skip
        return int(conn.execute(select(func.count()).select_from(dupes)).scalar_one())


def raw_without_entry(engine: Engine, account_id: str, start: datetime, end: datetime) -> int:
    """Raw transactions of the range with no ledger entry (must be 0: rows that cannot be
    normalized are quarantined instead of stored raw)."""
    raw, e = s.raw_transactions, s.ledger_entries
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(raw).where(and_(
            raw.c.account_id == account_id, raw.c.date_utc >= start, raw.c.date_utc < end,
            ~select(e.c.reference).where(and_(e.c.account_id == raw.c.account_id,
                                              e.c.reference == raw.c.reference)).exists(),
        ))).scalar_one())  # fmt: skip
