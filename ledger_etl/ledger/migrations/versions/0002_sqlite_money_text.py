"""money as exact decimal text on SQLite

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 10:00:00.000000

SQLite stored amounts as INTEGER counts of 1e-8, which overflow at 2^63 units (92 billion): a
realistic VND or IDR amount could not be stored. From this revision amounts are the canonical
decimal TEXT (`schema.Money`), summed exactly by `schema.money_sum`. Existing amounts are
converted exactly; PostgreSQL keeps NUMERIC(38, 8) and is not touched.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

from ledger_etl.ledger.schema import from_units, money_text, to_units

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (table, primary key columns, money columns, nullable money columns)
MONEY_COLUMNS = (
    ("ledger_entries", ("account_id", "reference"), ("amount",), ()),
    (
        "balance_observations",
        ("id",),
        ("balance", "deposit", "profit_loss", "available"),
        ("deposit", "profit_loss", "available"),
    ),
)


def _retype(convert: Any, new_type: Any, old_type: Any) -> None:
    """Read every amount, recreate the columns with `new_type`, write the converted amounts."""
    bind = op.get_bind()
    for table, keys, columns, nullable in MONEY_COLUMNS:
        names = ", ".join((*keys, *columns))
        # Table and column names are the constants above, never input.
        rows = bind.exec_driver_sql(f"SELECT {names} FROM {table}").all()  # noqa: S608
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    type_=new_type,
                    existing_type=old_type,
                    existing_nullable=column in nullable,
                )
        sets = ", ".join(f"{c} = ?" for c in columns)
        where = " AND ".join(f"{k} = ?" for k in keys)
        updates = [
            (*(None if v is None else convert(v) for v in row[len(keys) :]), *row[: len(keys)])
            for row in rows
        ]
        if updates:
            cursor = bind.connection.driver_connection.cursor()
            cursor.executemany(f"UPDATE {table} SET {sets} WHERE {where}", updates)  # noqa: S608
            cursor.close()


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    _retype(lambda units: money_text(from_units(int(units))), sa.Text(), sa.BigInteger())


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return

    def units(text: str) -> int:
        value = to_units(Decimal(text))
        if not -(2**63) <= value < 2**63:
            raise ValueError(f"amount {text} does not fit the INTEGER units of revision 0001")
        return value

    _retype(units, sa.BigInteger(), sa.Text())
