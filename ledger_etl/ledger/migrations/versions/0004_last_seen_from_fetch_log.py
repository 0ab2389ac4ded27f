"""the last run that saw a raw row, from the fetch log

Revision ID: 0004
Revises: 0003

`raw_transactions.last_run_id` and `raw_activities.last_run_id` were rewritten on every row by
every run that read it, even when nothing changed. From this revision the view `raw_last_seen`
(ledger/seen.py) derives it from the fetch log. Nothing is lost: where a stored value is newer
than what the fetch log says (a rebuild bumped it without fetching), it is kept in
`raw_seen_legacy`, which the view reads too. The downgrade writes the view's values back.

`raw_transactions.row_sha256` becomes the digest's 32 bytes instead of 64 hex characters.
`normalization_marks` (ledger/marks.py) lets a re-ingest skip rows whose raw JSON is the stored
one; existing accounts start without a mark (every row takes the full path, as before).
"""

from __future__ import annotations

from typing import Any

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
    op.create_table(
        "normalization_marks",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("account_id"),
    )
    bind.exec_driver_sql(view_sql(bind.dialect.name, run_keys=False))
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
    _retype_raw_digest(to_bytes=True)
    bind.exec_driver_sql(view_sql(bind.dialect.name, run_keys=False))


def _retype_raw_digest(*, to_bytes: bool) -> None:
    """raw_transactions.row_sha256 between 64 hex characters and its 32 bytes (what was stored
    is converted, never recomputed; a value that is not hex becomes 32 zero bytes, which matches
    no row, so the next fetch of that row rewrites it)."""
    bind = op.get_bind()
    text, binary = sa.String(length=64), sa.LargeBinary(length=32)
    convert: Any = bytes.fromhex if to_bytes else bytes.hex
    rows = bind.exec_driver_sql(
        "SELECT account_id, reference, row_sha256 FROM raw_transactions"
    ).all()
    with op.batch_alter_table("raw_transactions") as batch:
        batch.alter_column(
            "row_sha256", type_=binary if to_bytes else text,
            existing_type=text if to_bytes else binary, existing_nullable=False,
            postgresql_using="decode(row_sha256, 'hex')" if to_bytes
            else "encode(row_sha256, 'hex')",
        )  # fmt: skip
    if bind.dialect.name == "postgresql":
        return  # converted in place by the USING clause
    updates = []
    for account_id, reference, value in rows:
        try:
            updates.append((convert(value), account_id, reference))
        except (TypeError, ValueError):
            updates.append((bytes(32), account_id, reference))
    if updates:
        cursor = bind.connection.driver_connection.cursor()
        cursor.executemany(
            "UPDATE raw_transactions SET row_sha256 = ? WHERE account_id = ? AND reference = ?",
            updates,
        )
        cursor.close()


def downgrade() -> None:
    bind = op.get_bind()
    bind.exec_driver_sql(
        f"CREATE TABLE seen_before_downgrade AS SELECT endpoint, account_id, row_key, "  # noqa: S608
        f"last_run_id FROM {VIEW}"
    )
    bind.exec_driver_sql(f"DROP VIEW {VIEW}")
    _retype_raw_digest(to_bytes=False)
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
    op.drop_table("normalization_marks")
