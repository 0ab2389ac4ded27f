"""the last run that saw a raw row, from the fetch log

Revision ID: 0004
Revises: 0003

`raw_transactions.last_run_id` and `raw_activities.last_run_id` were rewritten on every row by
every run that read it, even when nothing changed. From this revision the view `raw_last_seen`
(ledger/seen.py) derives it from the fetch log. Nothing is lost: where a stored value is newer
than what the fetch log says (a rebuild bumped it without fetching), it is kept in
`raw_seen_legacy`, which the view reads too. The downgrade writes the view's values back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from ledger_etl.ledger.seen import VIEW, view_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (endpoint, raw table, key column)
RAW_TABLES = (
    ("transactions", "raw_transactions", "reference"),
    ("activity", "raw_activities", "activity_key"),
)


def upgrade() -> None:
    bind = op.get_bind()
    op.create_table(
        "raw_seen_legacy",
        sa.Column("endpoint", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("row_key", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "account_id", "row_key"),
    )
    bind.exec_driver_sql(view_sql(bind.dialect.name))
    for endpoint, table, key in RAW_TABLES:
        # Constants above, never input.
        bind.exec_driver_sql(
            "INSERT INTO raw_seen_legacy (endpoint, account_id, row_key, run_id) "  # noqa: S608
            f"SELECT v.endpoint, v.account_id, v.row_key, r.last_run_id FROM {VIEW} AS v "
            f"JOIN {table} AS r ON r.account_id = v.account_id AND r.{key} = v.row_key "
            f"WHERE v.endpoint = '{endpoint}' AND r.last_run_id > v.last_run_id"
        )
    # SQLite rebuilds a table to drop a column, and refuses to while a view names it.
    bind.exec_driver_sql(f"DROP VIEW {VIEW}")
    for _, table, _ in RAW_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("last_run_id")
    bind.exec_driver_sql(view_sql(bind.dialect.name))


def downgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql(
        f"CREATE TABLE seen_before_downgrade AS SELECT endpoint, account_id, row_key, "  # noqa: S608
        f"last_run_id FROM {VIEW}"
    )
    bind.exec_driver_sql(f"DROP VIEW {VIEW}")
    for endpoint, table, key in RAW_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("last_run_id", sa.String(length=64), nullable=True))
        bind.exec_driver_sql(
            f"UPDATE {table} SET last_run_id = (SELECT b.last_run_id "  # noqa: S608
            f"FROM seen_before_downgrade AS b WHERE b.endpoint = '{endpoint}' "
            f"AND b.account_id = {table}.account_id AND b.row_key = {table}.{key})"
        )
        with op.batch_alter_table(table) as batch:
            batch.alter_column("last_run_id", existing_type=sa.String(length=64), nullable=False)
    bind.exec_driver_sql("DROP TABLE seen_before_downgrade")
    op.drop_table("raw_seen_legacy")
