"""The schema: migrations equal the code, the reference DDL equals the code, money is exact."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, func, insert, inspect, select

from ledger_etl.cli import main
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import DatabaseUrlError, make_engine, normalize_url, upgrade
from ledger_etl.ledger.ddl import render_ddl

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_reference_ddl_files_equal_the_code(dialect: str) -> None:
    committed = (SQL_DIR / f"schema.{dialect}.sql").read_text(encoding="utf-8")
    assert committed == render_ddl(dialect), (
        f"sql/schema.{dialect}.sql is stale: regenerate it with "
        f"`ledger-etl db ddl --dialect {dialect} > sql/schema.{dialect}.sql`"
    )


def test_migrations_build_exactly_the_schema_in_code(ledger_engine: Engine) -> None:
    upgrade(ledger_engine)
    upgrade(ledger_engine)  # idempotent
    with ledger_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), s.metadata)
    assert diff == []
    tables = set(inspect(ledger_engine).get_table_names())
    assert set(s.metadata.tables) <= tables


def test_money_is_exact_and_sums_are_exact(ledger_engine: Engine) -> None:
    upgrade(ledger_engine)
    amounts = [
        Decimal("0.1"),
        Decimal("0.2"),
        Decimal("-0.3"),
        Decimal("12345678901.23456789"),
        Decimal("-12345678901.23456789"),
        Decimal("0.00000001"),
    ]
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with ledger_engine.begin() as conn:
        conn.execute(
            insert(s.ledger_entries),
            [
                {
                    "account_id": "A1",
                    "reference": str(i),
                    "posted_at": now,
                    "transaction_type": "ADJUSTMENT",
                    "amount": amount,
                    "currency": "USD",
                    "currency_raw": "USD",
                    "ledger_account": "6200",
                    "flags": "",
                    "row_sha256": "x",
                    "first_run_id": "r",
                    "last_run_id": "r",
                }
                for i, amount in enumerate(amounts)
            ],
        )
    with ledger_engine.connect() as conn:
        stored = (
            conn.execute(select(s.ledger_entries.c.amount).order_by(s.ledger_entries.c.reference))
            .scalars()
            .all()
        )
        total = conn.execute(select(func.sum(s.ledger_entries.c.amount))).scalar_one()
    assert stored == amounts
    assert total == Decimal("0.00000001")  # summed in SQL, exactly, on both backends


def test_more_than_eight_decimals_is_refused() -> None:
    with pytest.raises(ValueError, match="decimal places"):
        s.to_units(Decimal("0.000000001"))
    assert s.from_units(s.to_units(Decimal("-80.43"))) == Decimal("-80.43")


def test_database_urls_are_checked_without_echoing_secrets() -> None:
    assert normalize_url("postgresql://u:p@h/db").startswith("postgresql+psycopg://")
    with pytest.raises(DatabaseUrlError) as caught:
        normalize_url("mysql://user:s3cret@host/db")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(DatabaseUrlError):
        normalize_url("::not a url::")


def test_db_upgrade_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x' / 'ledger.sqlite'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert "up to date" in result.output
    assert set(s.metadata.tables) <= set(inspect(make_engine(url)).get_table_names())
