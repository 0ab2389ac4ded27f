"""Idempotent writes to the ledger, on SQLite and PostgreSQL.

One fetched range (a `HistoryResult`) is written in ONE database transaction: raw rows, ledger
rows (with the previous version of any changed row kept in `entry_history`), activities,
quarantine rows and the fetch log. A process killed anywhere before the commit leaves nothing
behind, and the fetch log (the coverage map) never claims a window whose rows are not stored.

Bulk path: rows go into a temporary staging table (executemany on SQLite, COPY on PostgreSQL) and
are merged with `INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE <content changed>`, so
re-ingesting unchanged rows writes nothing to the ledger. Writers of one account are serialized
(SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock per account).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, text

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.normalize import ActivityRow, LedgerRow
from ledger_etl.ledger.schema import to_units

TX_STAGE_COLUMNS = (
    "account_id", "reference", "posted_at", "transaction_type", "instrument", "amount",
    "currency", "currency_raw", "status", "deal_id", "note", "ledger_account", "flags",
    "row_sha256", "raw", "raw_sha256", "window_start", "window_end",
)  # fmt: skip
ACT_STAGE_COLUMNS = (
    "account_id", "activity_key", "occurred_at", "epic", "deal_id", "source", "activity_type",
    "status", "deal_reference", "direction", "size", "level", "working_order_id", "actions",
    "flags", "occurrence", "raw", "window_start", "window_end",
)  # fmt: skip
_LEDGER_COLUMNS = TX_STAGE_COLUMNS[:14]
_ACTIVITY_COLUMNS = ACT_STAGE_COLUMNS[:15]
_PG_TYPES = {
    "posted_at": "timestamptz", "occurred_at": "timestamptz", "window_start": "timestamptz",
    "window_end": "timestamptz", "amount": "numeric(38,8)", "occurrence": "integer",
}  # fmt: skip


@dataclass(frozen=True)
class StagedTransaction:
    row: LedgerRow
    raw: str
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class StagedActivity:
    row: ActivityRow
    occurrence: int
    raw: str
    window_start: datetime
    window_end: datetime


@dataclass(frozen=True)
class QuarantineRow:
    account_id: str
    endpoint: str
    raw: str
    reason: str
    window_start: datetime | None = None
    window_end: datetime | None = None


@dataclass
class WriteCounts:
    inserted: int = 0
    changed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    history: list[str] = field(default_factory=list)  # references whose content changed


def sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores, so bulk and ORM paths read alike."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class LedgerWriter:
    """Writes within one open transaction (`Connection` from `engine.begin()`)."""

    def __init__(self, connection: Connection, run_id: str) -> None:
        self.conn = connection
        self.run_id = run_id
        self.dialect = connection.dialect.name

    # -- locking ------------------------------------------------------------------------------
    def lock_account(self, account_id: str) -> None:
        if self.dialect == "postgresql":
            key = int.from_bytes(
                hashlib.sha256(account_id.encode()).digest()[:8], "big", signed=True
            )
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    # -- staging ------------------------------------------------------------------------------
    def _stage(self, name: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        if self.dialect == "postgresql":
            cols = ", ".join(f"{c} {_PG_TYPES.get(c, 'text')}" for c in columns)
            self.conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({cols}) ON COMMIT DROP")
            raw = self.conn.connection.driver_connection
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
        else:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
            self.conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({', '.join(columns)})")
            marks = ", ".join("?" for _ in columns)
            cursor = self.conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.executemany(f"INSERT INTO temp.{name} VALUES ({marks})", rows)
            cursor.close()

    def _tx_tuples(self, staged: Sequence[StagedTransaction]) -> Iterable[tuple[Any, ...]]:
        sqlite = self.dialect == "sqlite"
        for item in staged:
            r = item.row
            yield (
                r.account_id, r.reference,
                sqlite_time(r.posted_at) if sqlite else r.posted_at,
                r.transaction_type, r.instrument,
                to_units(r.amount) if sqlite else r.amount,
                r.currency, r.currency_raw, r.status, r.deal_id, r.note, r.ledger_account,
                r.flags, r.row_sha256, item.raw,
                hashlib.sha256(item.raw.encode()).hexdigest(),
                sqlite_time(item.window_start) if sqlite else item.window_start,
                sqlite_time(item.window_end) if sqlite else item.window_end,
            )  # fmt: skip

    def _act_tuples(self, staged: Sequence[StagedActivity]) -> Iterable[tuple[Any, ...]]:
        sqlite = self.dialect == "sqlite"
        for item in staged:
            r = item.row
            yield (
                *r[:2], sqlite_time(r.occurred_at) if sqlite else r.occurred_at, *r[3:],
                item.occurrence, item.raw,
                sqlite_time(item.window_start) if sqlite else item.window_start,
                sqlite_time(item.window_end) if sqlite else item.window_end,
            )  # fmt: skip

    # -- transactions -------------------------------------------------------------------------
    def write_transactions(self, staged: Sequence[StagedTransaction]) -> WriteCounts:
        counts = WriteCounts()
        if not staged:
            return counts
        self._stage("stage_tx", TX_STAGE_COLUMNS, self._tx_tuples(staged))
        stage = "temp.stage_tx" if self.dialect == "sqlite" else "stage_tx"
        counts.inserted = self.conn.exec_driver_sql(
            f"SELECT count(*) FROM {stage} st WHERE NOT EXISTS (SELECT 1 FROM ledger_entries l "
            "WHERE l.account_id = st.account_id AND l.reference = st.reference)"
        ).scalar_one()
        changed = (
            self.conn.execute(
                select(s.ledger_entries).where(
                    text(
                        f"EXISTS (SELECT 1 FROM {stage} st WHERE st.account_id = "
                        "ledger_entries.account_id AND st.reference = ledger_entries.reference "
                        "AND st.row_sha256 <> ledger_entries.row_sha256)"
                    )
                )
            )
            .mappings()
            .all()
        )
        now = datetime.now(UTC)
        if changed:
            self.conn.execute(s.entry_history.insert(), [
                {"account_id": row["account_id"], "reference": row["reference"],
                 "previous": _jsonable(row), "replaced_at": now, "run_id": self.run_id}
                for row in changed
            ])  # fmt: skip
        counts.changed = len(changed)
        counts.history = [row["reference"] for row in changed]
        counts.unchanged = len(staged) - counts.inserted - counts.changed
        columns = ", ".join(_LEDGER_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _LEDGER_COLUMNS[2:])
        self.conn.execute(
            text(
                f"INSERT INTO ledger_entries ({columns}, first_run_id, last_run_id) "
                f"SELECT {columns}, :run, :run FROM {stage} WHERE true "
                "ON CONFLICT (account_id, reference) DO UPDATE SET "
                f"{updates}, last_run_id = excluded.last_run_id "
                "WHERE ledger_entries.row_sha256 <> excluded.row_sha256"
            ),
            {"run": self.run_id},
        )
        self.conn.execute(
            text(
                "INSERT INTO raw_transactions (account_id, reference, raw, row_sha256, date_utc, "
                "window_start, window_end, first_run_id, last_run_id) "
                "SELECT account_id, reference, raw, raw_sha256, posted_at, window_start, "
                f"window_end, :run, :run FROM {stage} WHERE true "
                "ON CONFLICT (account_id, reference) DO UPDATE SET raw = excluded.raw, "
                "row_sha256 = excluded.row_sha256, date_utc = excluded.date_utc, "
                "window_start = excluded.window_start, window_end = excluded.window_end, "
                "last_run_id = excluded.last_run_id "
                "WHERE raw_transactions.last_run_id <> excluded.last_run_id "
                "OR raw_transactions.row_sha256 <> excluded.row_sha256"
            ),
            {"run": self.run_id},
        )
        return counts

    # -- activity -----------------------------------------------------------------------------
    def write_activities(self, staged: Sequence[StagedActivity]) -> WriteCounts:
        counts = WriteCounts()
        if not staged:
            return counts
        self._stage("stage_act", ACT_STAGE_COLUMNS, self._act_tuples(staged))
        stage = "temp.stage_act" if self.dialect == "sqlite" else "stage_act"
        counts.inserted = self.conn.exec_driver_sql(
            f"SELECT count(*) FROM {stage} st WHERE NOT EXISTS (SELECT 1 FROM activities a "
            "WHERE a.account_id = st.account_id AND a.activity_key = st.activity_key)"
        ).scalar_one()
        counts.unchanged = len(staged) - counts.inserted
        columns = ", ".join(_ACTIVITY_COLUMNS)
        self.conn.execute(
            text(
                f"INSERT INTO activities ({columns}, first_run_id) SELECT {columns}, :run "
                f"FROM {stage} WHERE true ON CONFLICT (account_id, activity_key) DO NOTHING"
            ),
            {"run": self.run_id},
        )
        self.conn.execute(
            text(
                "INSERT INTO raw_activities (account_id, activity_key, occurrence, raw, date_utc, "
                "window_start, window_end, first_run_id, last_run_id) "
                "SELECT account_id, activity_key, occurrence, raw, occurred_at, window_start, "
                f"window_end, :run, :run FROM {stage} WHERE true "
                "ON CONFLICT (account_id, activity_key) DO UPDATE SET "
                "last_run_id = excluded.last_run_id "
                "WHERE raw_activities.last_run_id <> excluded.last_run_id"
            ),
            {"run": self.run_id},
        )
        return counts

    # -- quarantine and audit -----------------------------------------------------------------
    def quarantine(self, rows: Sequence[QuarantineRow]) -> int:
        unique: dict[tuple[str, str, str], QuarantineRow] = {}
        for row in rows:
            digest = hashlib.sha256(row.raw.encode()).hexdigest()
            unique.setdefault((row.account_id, row.endpoint, digest), row)
        for (account_id, endpoint, digest), row in unique.items():
            values = {
                "account_id": account_id,
                "endpoint": endpoint,
                "raw_sha256": digest,
                "raw": row.raw,
                "reason": row.reason,
                "window_start": row.window_start,
                "window_end": row.window_end,
                "first_run_id": self.run_id,
                "last_run_id": self.run_id,
            }
            self.conn.execute(_upsert_quarantine(self.dialect), values)
        return len(unique)

    def log_fetches(self, records: Sequence[dict[str, Any]]) -> None:
        if records:
            self.conn.execute(s.fetch_log.insert(), [dict(r, run_id=self.run_id) for r in records])


def _upsert_quarantine(dialect: str) -> Any:
    columns = (
        "account_id",
        "endpoint",
        "raw_sha256",
        "raw",
        "reason",
        "window_start",
        "window_end",
        "first_run_id",
        "last_run_id",
    )
    statement = text(
        f"INSERT INTO quarantine ({', '.join(columns)}) "
        f"VALUES ({', '.join(':' + c for c in columns)}) "
        "ON CONFLICT (account_id, endpoint, raw_sha256) DO UPDATE SET "
        "last_run_id = excluded.last_run_id, reason = excluded.reason"
    )
    if dialect == "sqlite":
        return statement.bindparams(
            bindparam("window_start", type_=s.UtcDateTime()),
            bindparam("window_end", type_=s.UtcDateTime()),
        )
    return statement


def _jsonable(row: Any) -> dict[str, Any]:
    out = {}
    for key, value in dict(row).items():
        out[key] = (
            value.isoformat()
            if isinstance(value, datetime)
            else (
                str(value)
                if value is not None and not isinstance(value, (str, int, bool))
                else value
            )
        )
    return out


def ledger_digest(connection: Connection, account_id: str | None = None) -> str:
    """sha256 over every ledger entry's content hash in key order: equal ledgers, equal digest."""
    query = select(
        s.ledger_entries.c.account_id, s.ledger_entries.c.reference, s.ledger_entries.c.row_sha256
    ).order_by(s.ledger_entries.c.account_id, s.ledger_entries.c.reference)
    if account_id is not None:
        query = query.where(s.ledger_entries.c.account_id == account_id)
    digest = hashlib.sha256()
    for row in connection.execute(query):
        digest.update(f"{row.account_id}\x1f{row.reference}\x1f{row.row_sha256}\n".encode())
    acts = select(s.activities.c.account_id, s.activities.c.activity_key).order_by(
        s.activities.c.account_id, s.activities.c.activity_key
    )
    if account_id is not None:
        acts = acts.where(s.activities.c.account_id == account_id)
    for row in connection.execute(acts):
        digest.update(f"A\x1f{row.account_id}\x1f{row.activity_key}\n".encode())
    return digest.hexdigest()


def count_rows(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def dumps_raw(raw: dict[str, Any]) -> str:
    return json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str)
