"""price bars and their coverage

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger_etl.ledger.schema

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    money = ledger_etl.ledger.schema.Money
    utc = ledger_etl.ledger.schema.UtcDateTime
    op.create_table(
        "price_bars",
        sa.Column("epic", sa.String(length=64), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=False),
        sa.Column("bar_type", sa.String(length=16), nullable=False),
        sa.Column("t", utc(), nullable=False),
        *(
            sa.Column(f"{side}_{k}", money(), nullable=True)
            for side in ("bid", "ask")
            for k in "ohlc"
        ),
        sa.Column("volume", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("final", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("first_seen", utc(), nullable=False),
        sa.Column("last_seen", utc(), nullable=False),
        sa.PrimaryKeyConstraint("epic", "resolution", "bar_type", "t"),
    )
    op.create_table(
        "price_coverage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("epic", sa.String(length=64), nullable=False),
        sa.Column("resolution", sa.String(length=16), nullable=False),
        sa.Column("bar_type", sa.String(length=16), nullable=False),
        sa.Column("start", utc(), nullable=False),
        sa.Column("end", utc(), nullable=False),
        sa.Column("recorded_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_price_coverage_key", "price_coverage", ["epic", "resolution", "bar_type", "start"]
    )


def downgrade() -> None:
    op.drop_index("ix_price_coverage_key", table_name="price_coverage")
    op.drop_table("price_coverage")
    op.drop_table("price_bars")
