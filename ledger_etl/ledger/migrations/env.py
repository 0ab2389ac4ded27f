"""Alembic environment: migrations run on the connection `ledger_etl.ledger.db.upgrade` passes."""

from __future__ import annotations

from alembic import context

from ledger_etl.ledger.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `ledger-etl db upgrade`")
context.configure(
    connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True
)
with context.begin_transaction():
    context.run_migrations()
