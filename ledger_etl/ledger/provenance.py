"""The source each account of the ledger was filled from (see `ledger_etl.provenance`).

The first sync of an account records its source; a later sync from another source for the same
account is refused before anything is written, unless the caller resets the account (which
removes its rows from the ledger; published statement folders are never touched).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from ledger_etl.errors import InputError
from ledger_etl.ledger import schema as s
from ledger_etl.provenance import BUNDLED_URL, DataSource

# Every table holding an account's rows, children before parents.
ACCOUNT_TABLES = (
    s.normalization_marks, s.entry_history, s.quarantine, s.activities, s.ledger_entries,
    s.raw_activities, s.raw_seen_legacy, s.raw_transactions, s.fetch_log, s.balance_observations,
    s.account_sources, s.accounts,
)  # fmt: skip


class SourceMismatchError(InputError):
    """Accounts of this ledger were filled from another source than the one asked to sync."""


def recorded_sources(engine: Engine) -> dict[str, DataSource]:
    t = s.account_sources
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.account_id, t.c.source_url, t.c.fingerprint, t.c.detail))
        return {row[0]: DataSource(row[1], row[2], dict(row[3] or {})) for row in rows}


def recorded_bundled_world(engine: Engine) -> dict[str, Any] | None:
    """The bundled simulator's world this ledger was filled from, if any."""
    worlds = [src.detail for src in recorded_sources(engine).values() if src.url == BUNDLED_URL]
    return worlds[0] if worlds else None


def claim_accounts(
    engine: Engine,
    run_id: str,
    account_ids: Sequence[str],
    source: DataSource,
    *,
    reset: bool = False,
) -> list[str]:
    """Record `source` for accounts that have none; refuse accounts recorded from another one
    (or, with `reset`, remove their rows first). Returns the accounts reset."""
    recorded = recorded_sources(engine)
    other = sorted(a for a in account_ids if a in recorded and recorded[a] != source)
    if other and not reset:
        first = recorded[other[0]]
        raise SourceMismatchError(
            f"account(s) {', '.join(other)} of this ledger were filled from {first.describe()}; "
            f"this run reads {source.describe()}. Mixing them would corrupt balances. Use a new "
            "ledger (LEDGER_DATABASE_URL), or `ledger-etl sync --reset-source` to remove those "
            "accounts' rows from this ledger and fill them again (published statement folders "
            "are kept)."
        )
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for table in ACCOUNT_TABLES if other else ():
            conn.execute(delete(table).where(table.c.account_id.in_(other)))
        missing = [a for a in account_ids if a not in recorded or a in other]
        if missing:
            conn.execute(
                insert(s.account_sources),
                [
                    {
                        "account_id": a, "source_url": source.url,
                        "fingerprint": source.fingerprint, "detail": source.detail,
                        "first_run_id": run_id, "recorded_at": now,
                    }
                    for a in missing
                ],
            )  # fmt: skip
    return other
