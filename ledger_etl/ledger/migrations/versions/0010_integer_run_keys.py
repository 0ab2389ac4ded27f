"""integer run keys inside the database; the public run id stays on `runs`

Revision ID: 0010
Revises: 0009

Rows that say which run fetched, stored or changed them held the public run id (29 characters
such as `20261203T153100Z-0123456789ab`). They now hold `runs.run_key`, a small integer given in
start order, and read the public id through `runs`:

- `fetch_log.run_id` -> `fetch_log.run_key` (a foreign key to `runs.run_key`);
- `ledger_entries.first_run_id`, `last_run_id` -> `first_run_key`, `last_run_key`;
- `raw_transactions`, `raw_activities`, `activities`: `first_run_id` -> `first_run_key`.

Nothing is lost: a run id that a row names but `runs` does not hold (rows written by hand or
copied from elsewhere) gets a `runs` record of kind `recovered` (started at the time the id
spells, status `unknown`), and the downgrade writes every public id back and removes those
records again. The view `raw_last_seen` is rebuilt over the keys; it still shows public ids.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from ledger_etl.ledger.seen import VIEW, view_sql
from ledger_etl.runs import RUN_ID

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

RECOVERED = "recovered"  # kind of a runs record made for an id only rows named
# (table, old column, new column)
COLUMNS = (
    ("fetch_log", "run_id", "run_key"),
    ("raw_transactions", "first_run_id", "first_run_key"),
    ("raw_activities", "first_run_id", "first_run_key"),
    ("ledger_entries", "first_run_id", "first_run_key"),
    ("ledger_entries", "last_run_id", "last_run_key"),
    ("activities", "first_run_id", "first_run_key"),
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _started(run_id: str) -> datetime:
    if RUN_ID.match(run_id):
        return datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return _EPOCH


def upgrade() -> None:
    bind = op.get_bind()
    runs = sa.table(
        "runs", sa.column("run_id"), sa.column("kind"), sa.column("started_at"),
        sa.column("status"), sa.column("params", sa.JSON), sa.column("code_version"),
    )  # fmt: skip
    known = {row[0] for row in bind.execute(sa.select(runs.c.run_id))}
    named: set[str] = set()
    for table, old, _ in COLUMNS:
        query = f"SELECT DISTINCT {old} FROM {table}"  # noqa: S608 (constants above)
        named |= {row[0] for row in bind.exec_driver_sql(query)}
    missing = sorted(named - known)
    if missing:
        started = sa.bindparam("started_at", type_=_utc_type())
        bind.execute(
            runs.insert().values(started_at=started),
            [
                {"run_id": run_id, "kind": RECOVERED, "started_at": _started(run_id),
                 "status": "unknown", "params": {}, "code_version": ""}
                for run_id in missing
            ],
        )  # fmt: skip
    # Added in place, never by rebuilding `runs`: on SQLite that would drop a table other
    # tables' foreign keys point at. (SQLite keeps the default; every run is given its key.)
    op.add_column("runs", sa.Column("run_key", sa.Integer(), nullable=False, server_default="0"))
    order = bind.exec_driver_sql("SELECT run_id FROM runs ORDER BY started_at, run_id").all()
    _executemany(
        "UPDATE runs SET run_key = ? WHERE run_id = ?",
        [(key, row[0]) for key, row in enumerate(order, start=1)],
    )
    if bind.dialect.name == "postgresql":
        op.alter_column("runs", "run_key", server_default=None)
    op.create_index("ix_runs_run_key", "runs", ["run_key"], unique=True)

    bind.exec_driver_sql(f"DROP VIEW {VIEW}")  # SQLite refuses to rebuild a table a view names
    for table, old, new in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(new, sa.Integer(), nullable=True))
        bind.exec_driver_sql(
            f"UPDATE {table} SET {new} = (SELECT r.run_key FROM runs AS r "  # noqa: S608
            f"WHERE r.run_id = {table}.{old})"
        )
    for table in dict.fromkeys(t for t, _, _ in COLUMNS):
        with op.batch_alter_table(table) as batch:
            for name, old, new in COLUMNS:
                if name != table:
                    continue
                batch.alter_column(new, existing_type=sa.Integer(), nullable=False)
                batch.drop_column(old)
                if new == "run_key":
                    batch.create_foreign_key(
                        "fk_fetch_log_run_key", "runs", ["run_key"], ["run_key"]
                    )
    bind.exec_driver_sql(view_sql(bind.dialect.name))


def downgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql(f"DROP VIEW {VIEW}")
    for table, old, new in COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(old, sa.String(length=64), nullable=True))
        bind.exec_driver_sql(
            f"UPDATE {table} SET {old} = (SELECT r.run_id FROM runs AS r "  # noqa: S608
            f"WHERE r.run_key = {table}.{new})"
        )
    for table in dict.fromkeys(t for t, _, _ in COLUMNS):
        with op.batch_alter_table(table) as batch:
            for name, old, new in COLUMNS:
                if name != table:
                    continue
                if new == "run_key":
                    batch.drop_constraint("fk_fetch_log_run_key", type_="foreignkey")
                batch.drop_column(new)
                batch.alter_column(old, existing_type=sa.String(length=64), nullable=False)
                if old == "run_id":
                    batch.create_foreign_key(
                        "fetch_log_run_id_fkey", "runs", ["run_id"], ["run_id"]
                    )
    op.drop_index("ix_runs_run_key", table_name="runs")
    bind.exec_driver_sql("ALTER TABLE runs DROP COLUMN run_key")  # in place (SQLite >= 3.35)
    # The records made for ids only rows named, unless something else now refers to them.
    bind.exec_driver_sql(
        "DELETE FROM runs WHERE kind = 'recovered' AND NOT EXISTS "
        "(SELECT 1 FROM fetch_log AS f WHERE f.run_id = runs.run_id) AND NOT EXISTS "
        "(SELECT 1 FROM balance_observations AS b WHERE b.run_id = runs.run_id)"
    )
    bind.exec_driver_sql(view_sql(bind.dialect.name, run_keys=False))


def _utc_type() -> Any:
    from ledger_etl.ledger.schema import UtcDateTime

    return UtcDateTime(timezone=True)


def _executemany(statement: str, rows: list[tuple[Any, ...]]) -> None:
    if not rows:
        return
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        statement = statement.replace("?", "%s")
    cursor = bind.connection.driver_connection.cursor()
    try:
        cursor.executemany(statement, rows)
    finally:
        cursor.close()
