"""Revision 0010: rows refer to runs by an integer key; the public run id stays on `runs`.

The migration must keep which run fetched, stored and changed each row, including a run id that
rows name but `runs` does not hold, and its downgrade must give back exactly the ids it found.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import JSON, Engine, bindparam, column, select, table, text

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import MIGRATIONS, upgrade
from ledger_etl.ledger.ingest import start_run
from ledger_etl.ledger.seen import last_seen_runs

DAY = datetime(2025, 3, 4, tzinfo=UTC)
RUNS = ("20250305T100000Z-bbbbbbbbbbbb", "20250304T100000Z-aaaaaaaaaaaa")  # not in start order
ORPHAN = "20250301T000000Z-dddddddddddd"  # named by rows only (copied from another ledger)
_RUNS = table(
    "runs", column("run_id"), column("kind"), column("started_at", s.UtcDateTime()),
    column("status"), column("params", JSON), column("code_version"),
)  # fmt: skip
_FETCH_LOG = table(
    "fetch_log", column("run_id"), column("account_id"), column("endpoint"),
    column("window_start", s.UtcDateTime()), column("window_end", s.UtcDateTime()),
    column("params", JSON), column("attempts"), column("relogins"), column("row_count"),
    column("duration_s"), column("ids", JSON), column("outcome"),
    column("fetched_at", s.UtcDateTime()),
)  # fmt: skip
_TIMES = ("at", "start", "end")


def _migrate(engine: Engine, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def _fill_0009(engine: Engine) -> None:
    """Rows as revision 0009 stored them: public run ids on every row."""
    with engine.begin() as conn:
        conn.execute(_RUNS.insert(), [
            {"run_id": r, "kind": "sync", "started_at": datetime.strptime(r[:16],
             "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC), "status": "succeeded", "params": {},
             "code_version": "0"} for r in RUNS
        ])  # fmt: skip
        conn.execute(_FETCH_LOG.insert(), [
            {"run_id": RUNS[0], "account_id": "A1", "endpoint": "transactions",
             "window_start": DAY, "window_end": DAY + timedelta(days=1), "params": {},
             "attempts": 1, "relogins": 0, "row_count": 2, "duration_s": 0.1,
             "ids": ["R1"], "outcome": "complete", "fetched_at": DAY + timedelta(days=2)}
        ])  # fmt: skip
        for ref, first in (("R1", RUNS[1]), ("R2", ORPHAN)):
            values = {"ref": ref, "at": DAY + timedelta(hours=12), "start": DAY,
                      "end": DAY + timedelta(days=1), "first": first, "last": RUNS[0]}  # fmt: skip
            conn.execute(
                text(
                    "INSERT INTO raw_transactions (account_id, reference, raw, row_sha256, "
                    "date_utc, window_start, window_end, first_run_id) VALUES "
                    "('A1', :ref, '{}', :digest, :at, :start, :end, :first)"
                ).bindparams(*(bindparam(n, type_=s.UtcDateTime()) for n in _TIMES)),
                values | {"digest": bytes(32)},
            )
            conn.execute(
                text(
                    "INSERT INTO ledger_entries (account_id, reference, posted_at, "
                    "transaction_type, amount, currency, currency_raw, ledger_account, flags, "
                    "row_sha256, first_run_id, last_run_id) VALUES ('A1', :ref, :at, 'TRADE', "
                    "'1.5', 'USD', 'USD', '4000', '', 'x', :first, :last)"
                ).bindparams(bindparam("at", type_=s.UtcDateTime())),
                {k: values[k] for k in ("ref", "at", "first", "last")},
            )


def _ids_0009(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {
            "fetch_log": conn.exec_driver_sql("SELECT run_id FROM fetch_log").all(),
            "raw": conn.exec_driver_sql(
                "SELECT reference, first_run_id FROM raw_transactions ORDER BY reference"
            ).all(),
            "entries": conn.exec_driver_sql(
                "SELECT reference, first_run_id, last_run_id FROM ledger_entries ORDER BY reference"
            ).all(),
            "runs": conn.exec_driver_sql("SELECT run_id FROM runs ORDER BY run_id").all(),
        }


def test_revision_0010_keeps_every_run_reference_and_downgrades(ledger_engine: Engine) -> None:
    _migrate(ledger_engine, "0009")
    _fill_0009(ledger_engine)
    before = _ids_0009(ledger_engine)
    upgrade(ledger_engine)

    with ledger_engine.connect() as conn:
        runs = dict(conn.execute(select(s.runs.c.run_id, s.runs.c.run_key)).all())
        kinds = dict(conn.execute(select(s.runs.c.run_id, s.runs.c.kind)).all())
        e = s.ledger_entries
        entries = conn.execute(
            select(e.c.reference, e.c.first_run_key, e.c.last_run_key).order_by(e.c.reference)
        ).all()
        raw = dict(conn.execute(select(s.raw_transactions.c.reference,
                                       s.raw_transactions.c.first_run_key)).all())  # fmt: skip
        fetched = conn.execute(select(s.fetch_log.c.run_key)).scalars().all()
        seen = last_seen_runs(conn, "A1", "transactions", DAY, DAY + timedelta(days=1))
    # Keys follow start order; the id only rows named got a `recovered` record.
    assert sorted(runs, key=runs.__getitem__) == [ORPHAN, RUNS[1], RUNS[0]]
    assert kinds[ORPHAN] == "recovered" and kinds[RUNS[0]] == "sync"
    assert entries == [("R1", runs[RUNS[1]], runs[RUNS[0]]), ("R2", runs[ORPHAN], runs[RUNS[0]])]
    assert raw == {"R1": runs[RUNS[1]], "R2": runs[ORPHAN]} and fetched == [runs[RUNS[0]]]
    # The view still speaks public ids: R1 was listed by the later fetch, R2 by none.
    assert seen == {"R1": RUNS[0], "R2": ORPHAN}

    # A new run continues the sequence of keys.
    new = start_run(ledger_engine, "sync", {})
    with ledger_engine.connect() as conn:
        key = conn.execute(select(s.runs.c.run_key).where(s.runs.c.run_id == new)).scalar()
    assert key == max(runs.values()) + 1
    with ledger_engine.begin() as conn:
        conn.execute(s.runs.delete().where(s.runs.c.run_id == new))

    _migrate(ledger_engine, "0009", down=True)
    assert _ids_0009(ledger_engine) == before
