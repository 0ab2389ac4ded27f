"""market extras: client sentiment series, watchlist membership history, chart templates

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger_etl.ledger.schema

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_UTC = ledger_etl.ledger.schema.UtcDateTime
_MONEY = ledger_etl.ledger.schema.Money


def upgrade() -> None:
    op.create_table(
        "sentiment_observations",
        sa.Column("epic", sa.String(length=64), nullable=False),
        sa.Column("observed_at", _UTC(), nullable=False),
        sa.Column("long_pct", _MONEY(), nullable=False),
        sa.Column("short_pct", _MONEY(), nullable=False),
        sa.Column("flags", sa.String(length=255), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", _UTC(), nullable=False),
        sa.PrimaryKeyConstraint("epic", "observed_at"),
    )
    with op.batch_alter_table("sentiment_observations") as batch_op:
        batch_op.create_index("ix_sentiment_observations_time", ["observed_at"], unique=False)
    op.create_table(
        "sentiment_polls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("observed_at", _UTC(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("asked", sa.Integer(), nullable=False),
        sa.Column("observed", sa.Integer(), nullable=False),
        sa.Column("new_rows", sa.Integer(), nullable=False),
        sa.Column("unknown", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("recorded_at", _UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "watchlists",
        sa.Column("watchlist_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("editable", sa.Boolean(), nullable=True),
        sa.Column("deleteable", sa.Boolean(), nullable=True),
        sa.Column("default_system", sa.Boolean(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("first_seen_at", _UTC(), nullable=False),
        sa.Column("last_seen_at", _UTC(), nullable=False),
        sa.Column("deleted_at", _UTC(), nullable=True),
        sa.PrimaryKeyConstraint("watchlist_id"),
    )
    op.create_table(
        "watchlist_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("watchlist_id", sa.String(length=64), nullable=False),
        sa.Column("epic", sa.String(length=64), nullable=False),
        sa.Column("valid_from", _UTC(), nullable=False),
        sa.Column("valid_to", _UTC(), nullable=True),
        sa.Column("added_run_id", sa.String(length=64), nullable=False),
        sa.Column("removed_run_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("watchlist_members") as batch_op:
        batch_op.create_index(
            "ix_watchlist_members_list", ["watchlist_id", "epic", "valid_from"], unique=False
        )
    op.create_table(
        "watchlist_polls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("observed_at", _UTC(), nullable=False),
        sa.Column("run_id", sa.String(length=64), nullable=False),
        sa.Column("watchlists", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
        sa.Column("unreadable", sa.JSON(), nullable=False),
        sa.Column("recorded_at", _UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "chart_templates",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", _UTC(), nullable=False),
        sa.Column("updated_at", _UTC(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "chart_template_versions",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("imported_at", _UTC(), nullable=False),
        sa.PrimaryKeyConstraint("name", "version"),
    )
    with op.batch_alter_table("chart_template_versions") as batch_op:
        batch_op.create_index(
            "ix_chart_template_versions_hash", ["name", "content_sha256"], unique=False
        )


def downgrade() -> None:
    for index, table in (
        ("ix_chart_template_versions_hash", "chart_template_versions"),
        ("ix_watchlist_members_list", "watchlist_members"),
        ("ix_sentiment_observations_time", "sentiment_observations"),
    ):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(index)
    for table in (
        "chart_template_versions",
        "chart_templates",
        "watchlist_polls",
        "watchlist_members",
        "watchlists",
        "sentiment_polls",
        "sentiment_observations",
    ):
        op.drop_table(table)
