"""trade intents: alerts turned into orders, one row per idempotency key

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger_etl.ledger.schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _utc(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=nullable)


def _money(name: str) -> sa.Column:
    return sa.Column(name, ledger_etl.ledger.schema.Money(), nullable=True)


def upgrade() -> None:
    op.create_table(
        "trade_intents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("idem_key", sa.String(length=200), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("epic", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("violations", sa.JSON(), nullable=False),
        sa.Column("order_request", sa.JSON(), nullable=True),
        sa.Column("pre_deals", sa.JSON(), nullable=True),
        sa.Column("deal_reference", sa.String(length=128), nullable=True),
        sa.Column("deal_ids", sa.JSON(), nullable=False),
        sa.Column("confirm", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _utc("next_attempt_at"),
        _money("intended_level"),
        _money("filled_level"),
        _money("slippage"),
        sa.Column("steps", sa.JSON(), nullable=False),
        _utc("received_at", nullable=False),
        _utc("acknowledged_at"),
        _utc("submitted_at"),
        _utc("confirmed_at"),
        _utc("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "idem_key", name="uq_trade_intents_key"),
    )
    op.create_index("ix_trade_intents_queue", "trade_intents", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_trade_intents_queue", table_name="trade_intents")
    op.drop_table("trade_intents")
