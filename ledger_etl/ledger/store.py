"""Idempotent writes to the ledger, on SQLite and PostgreSQL.

One fetched range (a `HistoryResult`) is written in ONE database transaction: raw rows, ledger
rows (with the previous version of any changed row kept in `entry_history`), activities,
quarantine rows and the fetch log. A process killed anywhere before the commit leaves nothing
behind, and the fetch log (the coverage map) never claims a window whose rows are not stored.

Bulk path: rows go into a temporary staging table (multi-row INSERT on SQLite, COPY on
PostgreSQL) and are merged so that only new rows and rows whose content hash differs are
written (see `_upsert_transactions`): re-ingesting unchanged rows writes no ledger or raw row,
and the run and fetch-log records it adds say which run saw them (`ledger.seen`). Rows stored
unchanged are usually skipped before they get here (`ledger.marks`), and an account's first
rows bypass the stage (`write_transactions(fresh=True)`). Writers of one account are
serialized (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock per account).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import chain, islice
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    column,
    delete,
    select,
    table,
    text,
    true,
)

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.normalize import ActivityRow, LedgerRow, storable_json

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
_RAW_COLUMNS = (
    "account_id", "reference", "raw", "row_sha256", "date_utc", "window_start", "window_end",
    "first_run_key",
)  # fmt: skip
_ENTRY_COLUMNS = (*_LEDGER_COLUMNS, "first_run_key", "last_run_key")
_ACTIVITY_COLUMNS = ACT_STAGE_COLUMNS[:15]
log = logging.getLogger(__name__)
T = TypeVar("T")

# Rows are staged and merged this many at a time, all batches in the caller's one transaction:
# memory stays bounded for long ranges, and preparing the next batch (normalization, hashing,
# staging tuples) overlaps the database's merge of the current one.
TX_BATCH_ROWS = 100_000
FIRST_BATCH_ROWS = 10_000  # the first batch is prepared before any write: keep it short
# SQLite: rows per multi-row INSERT (see `_sqlite_insert`).
SQLITE_ROWS_PER_INSERT = 500
# Seconds a thread waiting for the GIL lets its holder run on (Python's default is 5 ms); see
# `_fine_switching`.
SWITCH_INTERVAL_S = 0.0002
_PG_TYPES = {
    "posted_at": "timestamptz", "occurred_at": "timestamptz", "window_start": "timestamptz",
    "window_end": "timestamptz", "amount": "numeric(38,8)", "occurrence": "integer",
    "raw_sha256": "bytea",
}  # fmt: skip


class StagedTransaction(NamedTuple):
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
    removed: int = 0  # stored entries whose re-fetched version is now rejected


def sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores, so bulk and ORM paths read alike."""
    if value.tzinfo is UTC and value.year >= 1000:
        # Same text as the strftime below, several times cheaper: "YYYY-MM-DD HH:MM:SS.ffffff".
        return value.isoformat(" ", "microseconds")[:26]
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# The temporary staging table of the transactions bulk path, for the changed-rows join.
_STAGE_TX = table("stage_tx", column("account_id"), column("reference"), column("row_sha256"))


class LedgerWriter:
    """Writes within one open transaction (`Connection` from `engine.begin()`)."""

    def __init__(self, connection: Connection, run_id: str) -> None:
        self.conn = connection
        self.run_id = run_id
        self._run_key: int | None = None
        self.dialect = connection.dialect.name

    @property
    def run_key(self) -> int:
        """The run's integer key (`runs.run_key`): what the rows written here refer to."""
        if self._run_key is None:
            key = self.conn.execute(
                select(s.runs.c.run_key).where(s.runs.c.run_id == self.run_id)
            ).scalar()
            if key is None:
                raise LookupError(f"run {self.run_id!r} is not recorded in runs")
            self._run_key = key
        return self._run_key

    # -- locking ------------------------------------------------------------------------------
    def lock_account(self, account_id: str) -> None:
        if self.dialect == "postgresql":
            key = int.from_bytes(
                hashlib.sha256(account_id.encode()).digest()[:8], "big", signed=True
            )
            self.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})

    # -- staging ------------------------------------------------------------------------------
    def _create_stage(self, name: str, columns: Sequence[str]) -> None:
        if self.dialect == "postgresql":
            cols = ", ".join(f"{c} {_PG_TYPES.get(c, 'text')}" for c in columns)
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{name}")
            self.conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({cols}) ON COMMIT DROP")
        else:
            self.conn.exec_driver_sql(f"DROP TABLE IF EXISTS temp.{name}")
            self.conn.exec_driver_sql(f"CREATE TEMP TABLE {name} ({', '.join(columns)})")

    def _load_stage(
        self, name: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
    ) -> None:
        raw = self.conn.connection.driver_connection
        if self.dialect == "postgresql":
            with raw.cursor() as cursor:  # type: ignore[union-attr]
                with cursor.copy(f"COPY {name} ({', '.join(columns)}) FROM STDIN") as copy:
                    write_row = copy.write_row
                    for row in rows:
                        write_row(row)
            if name.startswith("stage_"):
                # A temporary table has no statistics: without them the planner guesses its size
                # and may scan a whole ledger table to join a handful of staged rows.
                self.conn.exec_driver_sql(f"ANALYZE {name}")
        else:
            target = f"temp.{name}" if name.startswith("stage_") else name
            _sqlite_insert(raw, target, columns, rows)  # type: ignore[arg-type]

    def _stage(self, name: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        self._create_stage(name, columns)
        self._load_stage(name, columns, rows)

    def _tx_tuples(self, staged: Iterable[StagedTransaction]) -> list[tuple[Any, ...]]:
        """The staging rows of a batch, built in one pass (window bounds formatted once each)."""
        times: dict[datetime, Any] = {}
        out: list[tuple[Any, ...]] = []
        append = out.append
        sha256 = hashlib.sha256
        if self.dialect != "sqlite":
            for r, raw, start, end in staged:
                raw = storable_json(raw)
                append((*r, raw, sha256(raw.encode()).digest(), start, end))
            return out
        for r, raw, window_start, window_end in staged:
            raw = storable_json(raw)
            start = times.get(window_start)
            if start is None:
                start = times[window_start] = sqlite_time(window_start)
            end = times.get(window_end)
            if end is None:
                end = times[window_end] = sqlite_time(window_end)
            # Normalization guarantees a plain NUMERIC(38, 8) value: its fixed-point text is
            # the canonical spelling `Money` stores on SQLite, without the type's check.
            append(
                (
                    r[0], r[1], sqlite_time(r[2]), r[3], r[4], format(r[5], "f"),
                    r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], raw,
                    sha256(raw.encode()).digest(), start, end,
                )
            )  # fmt: skip
        return out

    def _act_tuples(self, staged: Sequence[StagedActivity]) -> Iterable[tuple[Any, ...]]:
        sqlite = self.dialect == "sqlite"
        for item in staged:
            r = item.row
            yield (
                *r[:2], sqlite_time(r.occurred_at) if sqlite else r.occurred_at, *r[3:],
                item.occurrence, storable_json(item.raw),
                sqlite_time(item.window_start) if sqlite else item.window_start,
                sqlite_time(item.window_end) if sqlite else item.window_end,
            )  # fmt: skip

    # -- transactions -------------------------------------------------------------------------
    def write_transactions(
        self, staged: Iterable[StagedTransaction], *, fresh: bool = False
    ) -> WriteCounts:
        """Upsert ledger and raw rows; `staged` may be a lazy iterable (consumed batch by batch).

        `fresh`: the caller holds the account's lock and saw neither ledger nor raw rows of it,
        and the staged references are distinct, so nothing can conflict: the rows are written
        straight into the tables (multi-row INSERT / COPY), without staging, history or merge,
        while the helper thread prepares the next batch.

        While the database runs batch k's upserts, batch k+1 is prepared (the iterable advanced,
        staging tuples built) on a helper thread; every statement still runs on this connection,
        in the caller's transaction.
        """
        with _collector_paused(), _fine_switching():
            if fresh:
                return self._insert_transactions(iter(staged))
            return self._write_transactions(iter(staged))

    def _insert_transactions(self, source: Iterator[StagedTransaction]) -> WriteCounts:
        counts = WriteCounts()
        build = partial(self._insert_tuples, self.run_key)  # looked up here, not on the helper
        size = FIRST_BATCH_ROWS
        entries, raws = build(islice(source, size))
        with ThreadPoolExecutor(1, thread_name_prefix="ledger-stage") as pool:
            while entries:
                # Each batch is prepared while the previous one is written; preparing a row
                # costs less than writing it, so batches may double up to TX_BATCH_ROWS.
                size = min(2 * size, TX_BATCH_ROWS)
                upcoming = pool.submit(build, islice(source, size))
                began = time.perf_counter()
                self._load_stage("ledger_entries", _ENTRY_COLUMNS, entries)
                self._load_stage("raw_transactions", _RAW_COLUMNS, raws)
                written = len(entries)
                counts.inserted += written
                del entries, raws
                wrote_at = time.perf_counter()
                entries, raws = upcoming.result()
                log.debug(
                    "ledger batch of %d new rows: written in %.3f s, then waited %.3f s for "
                    "the next batch", written, wrote_at - began, time.perf_counter() - wrote_at,
                )  # fmt: skip
        return counts

    def _insert_tuples(
        self, run: int, staged: Iterable[StagedTransaction]
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """A batch's ledger and raw rows, ready for `_load_stage` (built off the writer thread)."""
        rows = self._tx_tuples(staged)
        entries = [(*row[:14], run, run) for row in rows]
        raws = [(r[0], r[1], r[14], r[15], r[2], r[16], r[17], run) for r in rows]
        return entries, raws

    def _write_transactions(self, source: Iterator[StagedTransaction]) -> WriteCounts:
        counts = WriteCounts()
        batch = self._tx_tuples(islice(source, FIRST_BATCH_ROWS))
        if not batch:
            return counts
        now = datetime.now(UTC)
        self._create_stage("stage_tx", TX_STAGE_COLUMNS)
        with ThreadPoolExecutor(1, thread_name_prefix="ledger-stage") as pool:
            while batch:
                began = time.perf_counter()
                self._load_stage("stage_tx", TX_STAGE_COLUMNS, batch)
                size = len(batch)
                del batch
                staged_at = time.perf_counter()
                changed = self._record_history(now)
                upcoming = pool.submit(_prepare, self._tx_tuples, source)
                history_at = time.perf_counter()
                self._upsert_transactions(counts, size, changed)
                merged_at = time.perf_counter()
                batch = upcoming.result()  # re-raises what the helper raised
                log.debug(
                    "ledger batch of %d rows: stage %.3f s, changed rows %.3f s, upserts "
                    "%.3f s, then waited %.3f s for the next batch",
                    size, staged_at - began, history_at - staged_at, merged_at - history_at,
                    time.perf_counter() - merged_at,
                )  # fmt: skip
                if batch:
                    self._clear_stage("stage_tx")
        return counts

    def _clear_stage(self, name: str) -> None:
        prefix = "temp." if self.dialect == "sqlite" else ""
        self.conn.exec_driver_sql(f"DELETE FROM {prefix}{name}")

    def _record_history(self, now: datetime) -> list[Any]:
        """Keep the stored version of every staged row whose content changed; return them."""
        staged = _STAGE_TX.alias("st")
        e = s.ledger_entries
        same_key = and_(e.c.account_id == staged.c.account_id, e.c.reference == staged.c.reference)
        if self.dialect == "postgresql":
            # One primary-key probe per staged row: a hash join would scan the whole ledger
            # once per batch, a cost that grows with the table instead of with the batch.
            stored = select(e).where(same_key).lateral("l")
            query = (
                select(stored)
                .select_from(staged)
                .join(stored, true())
                .where(stored.c.row_sha256 != staged.c.row_sha256)
            )
        else:  # SQLite already drives this join from the stage through the primary key
            query = (
                select(e)
                .join_from(staged, e, same_key)
                .where(e.c.row_sha256 != staged.c.row_sha256)
            )
        changed = self.conn.execute(query).mappings().all()
        if changed:
            self.conn.execute(s.entry_history.insert(), [
                {"account_id": row["account_id"], "reference": row["reference"],
                 "previous": _jsonable(row), "replaced_at": now, "run_id": self.run_id}
                for row in changed
            ])  # fmt: skip
        return list(changed)

    def _upsert_transactions(self, counts: WriteCounts, size: int, changed: list[Any]) -> None:
        """Insert new rows and rewrite changed ones; an unchanged row is not written at all.

        SQLite: `INSERT ... ON CONFLICT DO UPDATE ... WHERE <hash differs>` (a conflicting row
        whose condition fails is left alone). PostgreSQL: such an upsert still locks, so writes,
        every conflicting row; there new rows go in with `ON CONFLICT DO NOTHING` and changed
        rows are rewritten by an `UPDATE ... FROM` matching differing hashes only. Which run last
        saw a raw row is the fetch log's to say (`ledger.seen`), never written here.
        """
        stage = "temp.stage_tx" if self.dialect == "sqlite" else "stage_tx"
        columns = ", ".join(_LEDGER_COLUMNS)
        sqlite = self.dialect == "sqlite"
        if changed and not sqlite:
            sets = ", ".join(f"{c} = st.{c}" for c in _LEDGER_COLUMNS[2:])
            self.conn.execute(
                text(
                    f"UPDATE ledger_entries SET {sets}, last_run_key = :run FROM {stage} AS st "
                    "WHERE ledger_entries.account_id = st.account_id "
                    "AND ledger_entries.reference = st.reference "
                    "AND ledger_entries.row_sha256 <> st.row_sha256"
                ),
                {"run": self.run_key},
            )
        updates = ", ".join(f"{c} = excluded.{c}" for c in _LEDGER_COLUMNS[2:])
        conflict = (
            f"DO UPDATE SET {updates}, last_run_key = excluded.last_run_key "
            "WHERE ledger_entries.row_sha256 <> excluded.row_sha256"
            if sqlite
            else "DO NOTHING"
        )
        written = self.conn.execute(
            text(
                f"INSERT INTO ledger_entries ({columns}, first_run_key, last_run_key) "
                f"SELECT {columns}, :run, :run FROM {stage} WHERE true "
                f"ON CONFLICT (account_id, reference) {conflict}"
            ),
            {"run": self.run_key},
        ).rowcount
        inserted = written - len(changed) if sqlite else written
        counts.inserted += inserted
        counts.changed += len(changed)
        counts.unchanged += size - inserted - len(changed)
        counts.history.extend(row["reference"] for row in changed)
        if not sqlite and inserted < size:  # rows stored already: rewrite those whose raw differs
            self.conn.execute(
                text(
                    "UPDATE raw_transactions SET raw = st.raw, row_sha256 = st.raw_sha256, "
                    "date_utc = st.posted_at, window_start = st.window_start, "
                    "window_end = st.window_end "
                    f"FROM {stage} AS st WHERE raw_transactions.account_id = st.account_id "
                    "AND raw_transactions.reference = st.reference "
                    "AND raw_transactions.row_sha256 <> st.raw_sha256"
                )
            )
        raw_columns = ("raw", "row_sha256", "date_utc", "window_start", "window_end")
        conflict = (
            f"DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in raw_columns)} "
            "WHERE raw_transactions.row_sha256 <> excluded.row_sha256"
            if sqlite
            else "DO NOTHING"
        )
        self.conn.execute(
            text(
                "INSERT INTO raw_transactions (account_id, reference, raw, row_sha256, date_utc, "
                "window_start, window_end, first_run_key) "
                "SELECT account_id, reference, raw, raw_sha256 AS row_sha256, posted_at AS "
                f"date_utc, window_start, window_end, :run FROM {stage} WHERE true "
                f"ON CONFLICT (account_id, reference) {conflict}"
            ),
            {"run": self.run_key},
        )

    # -- activity -----------------------------------------------------------------------------
    def write_activities(self, staged: Sequence[StagedActivity]) -> WriteCounts:
        counts = WriteCounts()
        if not staged:
            return counts
        self._stage("stage_act", ACT_STAGE_COLUMNS, self._act_tuples(staged))
        stage = "temp.stage_act" if self.dialect == "sqlite" else "stage_act"
        columns = ", ".join(_ACTIVITY_COLUMNS)
        counts.inserted = self.conn.execute(
            text(
                f"INSERT INTO activities ({columns}, first_run_key) SELECT {columns}, :run "
                f"FROM {stage} WHERE true ON CONFLICT (account_id, activity_key) DO NOTHING"
            ),
            {"run": self.run_key},
        ).rowcount
        counts.unchanged = len(staged) - counts.inserted
        self.conn.execute(
            text(
                "INSERT INTO raw_activities (account_id, activity_key, occurrence, raw, date_utc, "
                "window_start, window_end, first_run_key) "
                "SELECT account_id, activity_key, occurrence, raw, occurred_at, window_start, "
                f"window_end, :run FROM {stage} WHERE true "
                "ON CONFLICT (account_id, activity_key) DO NOTHING"
            ),
            {"run": self.run_key},
        )
        return counts

    # -- quarantine and audit -----------------------------------------------------------------
    def quarantine(self, rows: Sequence[QuarantineRow]) -> int:
        unique: dict[tuple[str, str, str], QuarantineRow] = {}
        for row in rows:
            # A quarantined row is the hostile one: its text is made storable before hashing.
            row = QuarantineRow(
                row.account_id, row.endpoint, storable_json(row.raw), storable_json(row.reason),
                row.window_start, row.window_end,
            )  # fmt: skip
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

    def remove_entries(self, account_id: str, references: Iterable[str]) -> int:
        """Take stored entries that now fail to qualify out of the ledger: each one's last version
        goes to `entry_history`, its raw row leaves `raw_transactions` (the caller quarantines the
        rejected text with its reason). Returns how many entries there were."""
        e, raw = s.ledger_entries, s.raw_transactions
        wanted = sorted({r for r in references if _usable_key(r)})
        removed = 0
        for at in range(0, len(wanted), 500):
            chunk = wanted[at : at + 500]
            mine = and_(e.c.account_id == account_id, e.c.reference.in_(chunk))
            entries = self.conn.execute(select(e).where(mine)).mappings().all()
            if entries:
                now = datetime.now(UTC)
                self.conn.execute(s.entry_history.insert(), [
                    {"account_id": account_id, "reference": row["reference"],
                     "previous": _jsonable(row), "replaced_at": now, "run_id": self.run_id}
                    for row in entries
                ])  # fmt: skip
                self.conn.execute(delete(e).where(mine))
                removed += len(entries)
            self.conn.execute(
                delete(raw).where(raw.c.account_id == account_id, raw.c.reference.in_(chunk))
            )
        return removed

    def log_fetches(self, records: Sequence[dict[str, Any]]) -> None:
        if records:
            self.conn.execute(
                s.fetch_log.insert(), [dict(r, run_key=self.run_key) for r in records]
            )


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


def _usable_key(reference: object) -> bool:
    """A reference that can name a stored entry: text every backend accepts as a key (a
    rejected row's reference may hold a NUL, a lone surrogate or 10,000 characters)."""
    if not isinstance(reference, str) or not reference or "\x00" in reference:
        return False
    if len(reference) > s.ledger_entries.c.reference.type.length:
        return False
    try:
        reference.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bulk write.

    A batch creates hundreds of thousands of tuples and strings, none of them in a reference
    cycle; each allocation burst would otherwise trigger collections that walk every live
    object (the whole fetched range), which costs more than the normalization itself. Memory
    is still freed by reference counting; collection resumes, as it was, when the write ends.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _fine_switching() -> Iterator[None]:
    """Hand the GIL over promptly while the write runs.

    The writer thread releases the GIL inside every SQLite statement (and every wait on the
    PostgreSQL socket) and needs it back for the next one; the helper preparing the next batch
    holds it meanwhile. With the default switch interval (5 ms) the writer waits that long
    each time it wants it back, so the helper's work ends up serialized with the writes instead of
    overlapping them. A short interval lets the two interleave (the previous interval is put
    back when the write ends).
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _prepare(
    build: Callable[[Iterable[StagedTransaction]], T], source: Iterator[StagedTransaction]
) -> T:
    return build(islice(source, TX_BATCH_ROWS))


def _sqlite_insert(
    driver: Any, table_name: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Insert rows with multi-row `INSERT ... VALUES (...), (...)` statements.

    Each statement inserts `SQLITE_ROWS_PER_INSERT` rows in one step, during which the GIL is
    released: a helper thread preparing the next batch runs meanwhile, and hands the GIL back
    once per statement rather than once per row (as `executemany` would need it).
    """
    rows = rows if isinstance(rows, list) else list(rows)
    if not rows:
        return
    width = len(columns)
    limit = driver.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    per = max(1, min(SQLITE_ROWS_PER_INSERT, limit // width))
    head = f"INSERT INTO {table_name} ({', '.join(columns)}) VALUES "
    one = f"({', '.join('?' * width)})"
    flat = chain.from_iterable
    cursor = driver.cursor()
    try:
        whole = len(rows) - len(rows) % per
        if whole:
            statement = head + ", ".join([one] * per)
            for start in range(0, whole, per):
                cursor.execute(statement, tuple(flat(rows[start : start + per])))
        if whole < len(rows):
            rest = rows[whole:]
            cursor.execute(head + ", ".join([one] * len(rest)), tuple(flat(rest)))
    finally:
        cursor.close()
