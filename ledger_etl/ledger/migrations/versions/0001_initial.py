"""initial ledger schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 13:59:01.615971
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger_etl.ledger.schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Money as this revision stored it (INTEGER 1e-8 units on SQLite); frozen here so that the chain
# builds the same database whatever `schema.Money` later becomes (see 0002).
_MONEY_0001 = sa.Numeric(precision=38, scale=8).with_variant(sa.BigInteger(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("account_name", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("currency_raw", sa.String(length=16), nullable=True),
        sa.Column("account_type", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("preferred", sa.Boolean(), nullable=True),
        sa.Column(
            "first_seen_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "last_seen_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("account_id"),
    )
    op.create_table(
        "activities",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("activity_key", sa.String(length=64), nullable=False),
        sa.Column(
            "occurred_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("epic", sa.String(length=64), nullable=True),
        sa.Column("deal_id", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=True),
        sa.Column("activity_type", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("deal_reference", sa.String(length=128), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=True),
        sa.Column("size", sa.Text(), nullable=True),
        sa.Column("level", sa.Text(), nullable=True),
        sa.Column("working_order_id", sa.String(length=64), nullable=True),
        sa.Column("actions", sa.String(length=255), nullable=False),
        sa.Column("flags", sa.String(length=255), nullable=False),
        sa.Column("first_run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "activity_key"),
    )
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index(
            "ix_activities_account_time", ["account_id", "occurred_at"], unique=False
        )
        batch_op.create_index("ix_activities_deal", ["account_id", "deal_id"], unique=False)

    op.create_table(
        "entry_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("previous", sa.JSON(), nullable=False),
        sa.Column(
            "replaced_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("entry_history", schema=None) as batch_op:
        batch_op.create_index("ix_entry_history_entry", ["account_id", "reference"], unique=False)

    op.create_table(
        "ledger_entries",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("posted_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("transaction_type", sa.String(length=64), nullable=False),
        sa.Column("instrument", sa.String(length=128), nullable=True),
        sa.Column("amount", _MONEY_0001, nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=False),
        sa.Column("currency_raw", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("deal_id", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("ledger_account", sa.String(length=16), nullable=False),
        sa.Column("flags", sa.String(length=255), nullable=False),
        sa.Column("row_sha256", sa.String(length=64), nullable=False),
        sa.Column("first_run_id", sa.String(length=64), nullable=False),
        sa.Column("last_run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "reference"),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ledger_entries_account_time", ["account_id", "posted_at"], unique=False
        )

    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=32), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "window_start", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("window_end", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("first_run_id", sa.String(length=64), nullable=False),
        sa.Column("last_run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "endpoint", "raw_sha256", name="uq_quarantine_row"),
    )
    op.create_table(
        "raw_activities",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("activity_key", sa.String(length=64), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("date_utc", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "window_start", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "window_end", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("first_run_id", sa.String(length=64), nullable=False),
        sa.Column("last_run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "activity_key"),
    )
    op.create_table(
        "raw_transactions",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("row_sha256", sa.String(length=64), nullable=False),
        sa.Column("date_utc", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "window_start", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "window_end", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("first_run_id", sa.String(length=64), nullable=False),
        sa.Column("last_run_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "reference"),
    )
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "started_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "finished_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.Column("code_version", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_table(
        "balance_observations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column(
            "observed_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("balance", _MONEY_0001, nullable=False),
        sa.Column("deposit", _MONEY_0001, nullable=True),
        sa.Column("profit_loss", _MONEY_0001, nullable=True),
        sa.Column("available", _MONEY_0001, nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("run_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.account_id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.run_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("balance_observations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_balance_observations_account_time", ["account_id", "observed_at"], unique=False
        )

    op.create_table(
        "fetch_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=32), nullable=False),
        sa.Column(
            "window_start", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "window_end", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("relogins", sa.Integer(), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("body_sha256", sa.String(length=64), nullable=True),
        sa.Column("min_ts", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("max_ts", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("ids", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "parent_start", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("parent_end", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column(
            "fetched_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.run_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("fetch_log", schema=None) as batch_op:
        batch_op.create_index(
            "ix_fetch_log_coverage",
            ["account_id", "endpoint", "window_start", "window_end"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("fetch_log", schema=None) as batch_op:
        batch_op.drop_index("ix_fetch_log_coverage")

    op.drop_table("fetch_log")
    with op.batch_alter_table("balance_observations", schema=None) as batch_op:
        batch_op.drop_index("ix_balance_observations_account_time")

    op.drop_table("balance_observations")
    op.drop_table("runs")
    op.drop_table("raw_transactions")
    op.drop_table("raw_activities")
    op.drop_table("quarantine")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_entries_account_time")

    op.drop_table("ledger_entries")
    with op.batch_alter_table("entry_history", schema=None) as batch_op:
        batch_op.drop_index("ix_entry_history_entry")

    op.drop_table("entry_history")
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_deal")
        batch_op.drop_index("ix_activities_account_time")

    op.drop_table("activities")
    op.drop_table("accounts")
