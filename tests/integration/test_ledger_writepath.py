"""The write path: a re-sync that finds nothing new writes no raw or ledger row.

Writes are counted by row triggers on every table that holds rows of the ledger (and, on
PostgreSQL, by the row-lock mark `xmax` an `ON CONFLICT DO UPDATE ... WHERE false` would leave),
not by time. The last run that saw a raw row is then read from the fetch log (`ledger.seen`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import JSON, Engine, bindparam, column, func, select, table, text

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.seen import last_seen_runs
from ledger_etl.monthly import incremental_ranges
from ledger_etl.simulator import SimulatorServer
from tests.conftest import TEST_NOW, make_server
from tests.integration.ledger_helpers import account_ids, count, sync

ROW_TABLES = (
    "raw_transactions", "raw_activities", "ledger_entries", "activities", "entry_history",
    "quarantine", "raw_seen_legacy",
)  # fmt: skip
_PG_AUDIT = """
CREATE FUNCTION audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO write_audit VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$
"""


@pytest.fixture(scope="module")
def small_sim() -> Iterator[SimulatorServer]:
    """Two accounts over a year and a half, two rows a day each: a year syncs in seconds."""
    server = make_server(rate_limit_per_second=0, rows_per_day=2.0, start=date(2024, 9, 1))
    yield server
    server.stop()


def install_write_audit(engine: Engine) -> None:
    """A row in `write_audit` for every row inserted, updated or deleted in ROW_TABLES."""
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE write_audit (tbl TEXT NOT NULL, op TEXT NOT NULL)")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(_PG_AUDIT)
            for table in ROW_TABLES:
                conn.exec_driver_sql(
                    f"CREATE TRIGGER audit_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION audit_write()"
                )
            return
        for table in ROW_TABLES:
            for op in ("INSERT", "UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER audit_{table}_{op.lower()} AFTER {op} ON {table} "
                    f"BEGIN INSERT INTO write_audit VALUES ('{table}', '{op}'); END"
                )


def audited(engine: Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT tbl, op, count(*) FROM write_audit GROUP BY tbl, op")
        return {(row[0], row[1]): row[2] for row in rows}


def locked_rows(engine: Engine) -> int:
    """Rows of the raw and ledger tables a later transaction locked or updated (PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        return 0
    with engine.connect() as conn:
        return sum(
            conn.exec_driver_sql(f"SELECT count(*) FROM {t} WHERE xmax::text <> '0'").scalar_one()
            for t in ROW_TABLES
        )


def daily_sync_writes_nothing(server: SimulatorServer, engine: Engine, months: int) -> None:
    """Store `months` months up to now, then run the daily sync (gaps plus the last two days)."""
    now = TEST_NOW
    start = (now - timedelta(days=30 * months)).replace(hour=0, minute=0)
    stored = sync(server, engine, start, now)
    assert stored.ok
    runs_before = {r.run_id for r in [stored]}
    entries, fetches = count(engine, s.ledger_entries), count(engine, s.fetch_log)
    assert entries > 30 * months  # both accounts, every day
    install_write_audit(engine)
    daily = sync(server, engine, start, now, ranges=incremental_ranges(engine, start, now, 2))
    assert daily.ok
    summaries = [e for a in daily.accounts for e in a.endpoints.values()]
    read = sum(e.rows for e in summaries)
    assert read > 0 and sum(e.unchanged for e in summaries) == read  # it did read rows again
    assert sum(e.inserted + e.changed + e.quarantined for e in summaries) == 0
    assert audited(engine) == {}  # not one raw, ledger, activity, history or quarantine row
    assert locked_rows(engine) == 0
    assert count(engine, s.ledger_entries) == entries
    assert count(engine, s.fetch_log) > fetches  # what the daily sync did write: its fetches
    # The rows it read were seen by it; the older ones last by the first sync.
    recent: set[str] = set()
    with engine.connect() as conn:
        for account in account_ids(server):
            seen = last_seen_runs(conn, account, "transactions", start, now)
            refs = _recent_refs(conn, account, now)
            assert refs <= set(seen) and {seen[r] for r in refs} <= {daily.run_id}
            assert {run for key, run in seen.items() if key not in refs} == runs_before
            recent |= refs
    assert recent, "the daily sync read transactions again"


def _recent_refs(conn, account: str, now: datetime) -> set[str]:
    e = s.ledger_entries
    since = (now - timedelta(days=2)).replace(hour=0, minute=0)
    query = select(e.c.reference).where(e.c.account_id == account, e.c.posted_at >= since)
    return set(conn.execute(query).scalars())


def test_daily_sync_of_stored_months_writes_no_raw_or_entry_row(
    small_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    daily_sync_writes_nothing(small_sim, ledger_engine, months=2)


@pytest.mark.slow
def test_daily_sync_of_a_stored_year_writes_no_raw_or_entry_row(
    small_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    daily_sync_writes_nothing(small_sim, ledger_engine, months=12)


def test_the_write_audit_sees_a_changed_row(
    small_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    """The audit is not blind: a raw row that differs from the stored one is rewritten."""
    start, end = datetime(2025, 6, 2, tzinfo=UTC), datetime(2025, 6, 4, tzinfo=UTC)
    assert sync(small_sim, ledger_engine, start, end).ok
    install_write_audit(ledger_engine)
    with ledger_engine.begin() as conn:
        key = conn.execute(select(func.min(s.raw_transactions.c.reference))).scalar_one()
        conn.execute(
            s.raw_transactions.update()
            .where(s.raw_transactions.c.reference == key)
            .values(raw="{}", row_sha256=bytes(32))
        )
    assert sync(small_sim, ledger_engine, start, end).ok
    assert audited(ledger_engine) == {("raw_transactions", "UPDATE"): 2}  # by hand, then by sync
    with ledger_engine.connect() as conn:
        raw = conn.execute(
            select(s.raw_transactions.c.raw).where(s.raw_transactions.c.reference == key)
        ).scalar_one()
    assert raw != "{}" and key in raw


# `fetch_log` as revisions 0001 to 0009 had it (the public run id on each record).
_FETCH_LOG_0003 = table(
    "fetch_log", column("run_id"), column("account_id"), column("endpoint"),
    column("window_start", s.UtcDateTime()), column("window_end", s.UtcDateTime()),
    column("params", JSON), column("attempts"), column("relogins"), column("row_count"),
    column("duration_s"), column("ids", JSON), column("outcome"),
    column("fetched_at", s.UtcDateTime()),
)  # fmt: skip


def test_revision_0004_keeps_the_last_run_that_saw_each_raw_row(ledger_engine: Engine) -> None:
    """Stored `last_run_id`s the fetch log does not explain are kept; the rest it derives."""
    from alembic import command
    from alembic.config import Config

    from ledger_etl.ledger.db import MIGRATIONS, upgrade

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with ledger_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
    day = datetime(2025, 3, 4, tzinfo=UTC)
    times = ("at", "start", "end")
    runs = ["20250304T100000Z-aaaaaaaaaaaa", "20250305T100000Z-bbbbbbbbbbbb",
            "20250306T100000Z-cccccccccccc"]  # fmt: skip
    with ledger_engine.begin() as conn:
        conn.execute(s.runs.insert(), [
            {"run_id": r, "kind": "sync", "started_at": day, "status": "succeeded",
             "params": {}, "code_version": "0"} for r in runs
        ])  # fmt: skip
        conn.execute(_FETCH_LOG_0003.insert(), [
            {"run_id": run, "account_id": "A1", "endpoint": "transactions",
             "window_start": day, "window_end": day + timedelta(days=1), "params": {},
             "attempts": 1, "relogins": 0, "row_count": 2, "duration_s": 0.1,
             "ids": ids, "outcome": "complete", "fetched_at": day + timedelta(days=2)}
            for run, ids in ((runs[0], ["R1", "R2", "R3"]), (runs[1], ["R1", "R2"]))
        ])  # fmt: skip
        for ref, last in (("R1", runs[1]), ("R2", runs[2]), ("R3", runs[0])):
            # R1: the fetch log says as much; R2: a rebuild ran after it (kept);
            # R3: the second fetch did not list it, so it was last seen by the first.
            conn.execute(
                text(
                    "INSERT INTO raw_transactions (account_id, reference, raw, row_sha256, "
                    "date_utc, window_start, window_end, first_run_id, last_run_id) VALUES "
                    "('A1', :ref, '{}', :digest, :at, :start, :end, :first, :last)"
                ).bindparams(*(bindparam(n, type_=s.UtcDateTime()) for n in times)),
                {"ref": ref, "digest": ref.encode().hex() * 16, "at": day + timedelta(hours=12),
                 "start": day,
                 "end": day + timedelta(days=1), "first": runs[0], "last": last},
            )  # fmt: skip
    upgrade(ledger_engine)
    with ledger_engine.connect() as conn:
        seen = last_seen_runs(conn, "A1", "transactions", day, day + timedelta(days=1))
        legacy = conn.execute(select(s.raw_seen_legacy.c.row_key)).scalars().all()
    assert seen == {"R1": runs[1], "R2": runs[2], "R3": runs[0]}
    assert legacy == ["R2"]  # only what the fetch log cannot say is kept aside
    with ledger_engine.connect() as conn:
        digests = dict(conn.execute(select(s.raw_transactions.c.reference,
                                           s.raw_transactions.c.row_sha256)).all())  # fmt: skip
    assert digests == {r: bytes.fromhex(r.encode().hex() * 16) for r in ("R1", "R2", "R3")}


def test_a_chart_change_is_not_skipped_as_unchanged_rows(
    small_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    """Rows whose raw JSON is stored unchanged are skipped only while the chart, currency and
    normalization they were made with still hold (`ledger.marks`); after a chart change the
    re-sync normalizes them again and keeps the previous versions."""
    from ledger_etl.ledger.chart import DEFAULT_ACCOUNTS, DEFAULT_TYPES, ChartOfAccounts

    start, end = datetime(2025, 6, 2, tzinfo=UTC), datetime(2025, 6, 9, tzinfo=UTC)
    assert sync(small_sim, ledger_engine, start, end).ok
    with ledger_engine.connect() as conn:
        kinds = set(conn.execute(select(s.ledger_entries.c.transaction_type)).scalars())
        marks = set(conn.execute(select(s.normalization_marks.c.fingerprint)).scalars())
    assert None not in marks and count(ledger_engine, s.normalization_marks) == 2
    moved = sorted(kinds)[0]
    chart = ChartOfAccounts(
        types={**DEFAULT_TYPES, moved: "9999"}, accounts={**DEFAULT_ACCOUNTS, "9999": "Moved"}
    )
    again = sync(small_sim, ledger_engine, start, end, chart=chart)
    changed = sum(e.changed for a in again.accounts for e in a.endpoints.values())
    with ledger_engine.connect() as conn:
        moved_rows = conn.execute(
            select(func.count()).where(s.ledger_entries.c.ledger_account == "9999")
        ).scalar_one()
        marks = set(conn.execute(select(s.normalization_marks.c.fingerprint)).scalars())
    assert changed == moved_rows > 0 and count(ledger_engine, s.entry_history) == changed
    assert None in marks  # an account with rows of two charts: its rows take the full path
    third = sync(small_sim, ledger_engine, start, end, chart=chart)
    assert sum(e.changed + e.inserted for a in third.accounts for e in a.endpoints.values()) == 0


def test_revision_0004_downgrades_and_upgrades_without_loss(
    small_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    from alembic import command
    from alembic.config import Config

    from ledger_etl.ledger.db import MIGRATIONS, upgrade

    start, end = datetime(2025, 6, 2, tzinfo=UTC), datetime(2025, 6, 5, tzinfo=UTC)
    assert sync(small_sim, ledger_engine, start, end).ok
    assert sync(small_sim, ledger_engine, start, end).ok

    def state() -> tuple[dict[str, str], list[tuple[str, bytes]]]:
        with ledger_engine.connect() as conn:
            account = account_ids(small_sim)[0]
            seen = last_seen_runs(conn, account, "transactions", start, end)
            r = s.raw_transactions
            digests = conn.execute(select(r.c.reference, r.c.row_sha256).order_by(r.c.reference))
            return seen, [tuple(row) for row in digests]

    before = state()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with ledger_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    with ledger_engine.connect() as conn:
        hexes = conn.exec_driver_sql("SELECT row_sha256, last_run_id FROM raw_transactions").all()
    assert hexes and all(len(h) == 64 and run for h, run in hexes)
    upgrade(ledger_engine)
    assert state() == before
