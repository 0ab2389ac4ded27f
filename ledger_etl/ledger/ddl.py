"""Reference DDL for DBAs, rendered from `schema.py` (the files in `sql/` are this, committed)."""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from ledger_etl.ledger.schema import metadata
from ledger_etl.ledger.seen import view_sql

DIALECTS = {"sqlite": sqlite.dialect(), "postgresql": postgresql.dialect()}


def render_ddl(dialect_name: str) -> str:
    dialect = DIALECTS[dialect_name]
    parts = [
        f"-- ledger_etl reference schema for {dialect_name}.\n"
        "-- Generated from ledger_etl/ledger/schema.py by `ledger-etl db ddl`; do not edit.\n"
        "-- Apply migrations with `ledger-etl db upgrade` rather than running this by hand.\n"
    ]
    for table in metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)).strip() + ";\n")
        for index in sorted(table.indexes, key=lambda i: i.name or ""):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)).strip() + ";\n")
    # Views after the tables they read (ledger/seen.py says why each exists).
    parts.append(view_sql(dialect_name) + ";\n")
    return "\n".join(parts)
