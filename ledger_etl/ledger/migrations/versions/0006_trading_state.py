"""trading state: instrument master, bitemporal snapshots, lifecycles, change log, alerts

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger_etl.ledger.schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = (
    "deal_lifecycles",
    "instrument_versions",
    "market_quotes",
    "order_snapshots",
    "position_snapshots",
    "trading_alerts",
    "trading_changelog",
    "trading_polls",
)


def upgrade() -> None:
    op.create_table(
        "deal_lifecycles",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("epic", sa.String(length=64), nullable=True),
        sa.Column("intended", sa.JSON(), nullable=False),
        sa.Column("executed", sa.JSON(), nullable=False),
        sa.Column("current", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("gone_since", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("event_keys", sa.JSON(), nullable=False),
        sa.Column(
            "updated_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.PrimaryKeyConstraint("account_id", "deal_id"),
    )
    op.create_table(
        "instrument_versions",
        sa.Column("instrument_id", sa.String(length=80), nullable=False),
        sa.Column(
            "valid_from", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("valid_to", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("epic", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("symbol", sa.Text(), nullable=True),
        sa.Column("asset_class", sa.String(length=32), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("lot_size", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True),
        sa.Column(
            "margin_factor", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.Column("margin_factor_unit", sa.String(length=16), nullable=True),
        sa.Column("guaranteed_stop_allowed", sa.Boolean(), nullable=True),
        sa.Column("dealing_rules", sa.JSON(), nullable=False),
        sa.Column("external_ids", sa.JSON(), nullable=False),
        sa.Column("attributes_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("instrument_id", "valid_from"),
    )
    op.create_index(
        "ix_instrument_versions_epic", "instrument_versions", ["epic", "valid_from"], unique=False
    )
    op.create_table(
        "market_quotes",
        sa.Column("epic", sa.String(length=64), nullable=False),
        sa.Column(
            "observed_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("bid", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=False),
        sa.Column("offer", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=False),
        sa.Column("market_status", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("epic", "observed_at"),
    )
    op.create_table(
        "order_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column(
            "observed_from", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "observed_to", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("epic", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("size", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=False),
        sa.Column("level", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=False),
        sa.Column(
            "stop_level", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.Column(
            "stop_distance", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.Column(
            "profit_level", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.Column(
            "profit_distance", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.Column("guaranteed_stop", sa.Boolean(), nullable=False),
        sa.Column("trailing_stop", sa.Boolean(), nullable=False),
        sa.Column("deal_reference", sa.String(length=128), nullable=True),
        sa.Column("working_order_id", sa.String(length=64), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("order_type", sa.String(length=16), nullable=False),
        sa.Column("time_in_force", sa.String(length=32), nullable=True),
        sa.Column("good_till", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_order_snapshots_deal", "order_snapshots", ["account_id", "deal_id"], unique=False
    )
    op.create_index(
        "ix_order_snapshots_time", "order_snapshots", ["account_id", "observed_from"], unique=False
    )
    op.create_table(
        "position_snapshots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column(
            "observed_from", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "observed_to", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True),
        sa.Column("epic", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("size", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=False),
        sa.Column("level", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=False),
        sa.Column(
            "stop_level", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.Column(
            "stop_distance", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.Column(
            "profit_level", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.Column(
            "profit_distance", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.Column("guaranteed_stop", sa.Boolean(), nullable=False),
        sa.Column("trailing_stop", sa.Boolean(), nullable=False),
        sa.Column("deal_reference", sa.String(length=128), nullable=True),
        sa.Column("working_order_id", sa.String(length=64), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column(
            "broker_upl", ledger_etl.ledger.schema.Money(precision=38, scale=8), nullable=True
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_position_snapshots_deal", "position_snapshots", ["account_id", "deal_id"], unique=False
    )
    op.create_index(
        "ix_position_snapshots_time",
        "position_snapshots",
        ["account_id", "observed_from"],
        unique=False,
    )
    op.create_table(
        "trading_alerts",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("alert_key", sa.String(length=64), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("first_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column("last_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False),
        sa.Column(
            "resolved_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=True
        ),
        sa.PrimaryKeyConstraint("account_id", "alert_key"),
    )
    op.create_table(
        "trading_changelog",
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=True),
        sa.Column(
            "occurred_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "recorded_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("flag", sa.String(length=32), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("entry_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "seq"),
    )
    op.create_index(
        "ix_trading_changelog_deal", "trading_changelog", ["account_id", "deal_id"], unique=False
    )
    op.create_table(
        "trading_polls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(length=64), nullable=False),
        sa.Column(
            "observed_at", ledger_etl.ledger.schema.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("positions_seen", sa.Integer(), nullable=False),
        sa.Column("orders_seen", sa.Integer(), nullable=False),
        sa.Column("rows_written", sa.Integer(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_trading_polls_account_time",
        "trading_polls",
        ["account_id", "observed_at"],
        unique=False,
    )


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
