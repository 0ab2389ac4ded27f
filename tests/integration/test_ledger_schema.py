"""The schema: migrations equal the code, the reference DDL equals the code, money is exact."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, insert, inspect, select

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
        # Beyond SQLite's 64-bit integers in 1e-8 units, and beyond Decimal's default 28 digits.
        Decimal("100000000000"),
        Decimal("123456789012345678901.12345678"),
        Decimal("-999999999999999999999999999999.99999999"),
        Decimal("999999999999999999999999999999.99999999"),
        Decimal("-100000000000"),
        Decimal("-123456789012345678901.12345678"),
    ]
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with ledger_engine.begin() as conn:
        conn.execute(
            insert(s.ledger_entries),
            [
                {
                    "account_id": "A1",
                    "reference": f"{i:02d}",
                    "posted_at": now,
                    "transaction_type": "ADJUSTMENT",
                    "amount": amount,
                    "currency": "USD",
                    "currency_raw": "USD",
                    "ledger_account": "6200",
                    "flags": "",
                    "row_sha256": "x",
                    "first_run_key": 1,
                    "last_run_key": 1,
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
        total = conn.execute(select(s.money_sum(s.ledger_entries.c.amount))).scalar_one()
        big = conn.execute(
            select(s.money_sum(s.ledger_entries.c.amount)).where(
                s.ledger_entries.c.reference.in_(["06", "07"])
            )
        ).scalar_one()
    assert stored == amounts  # Decimal equality is exact: no digit rounded away
    assert total == Decimal("0.00000001")  # summed in SQL, exactly, on both backends
    assert big == Decimal("123456789112345678901.12345678")


def test_sqlite_integer_amounts_are_converted_exactly(tmp_path: Path) -> None:
    """A ledger written before revision 0002 (INTEGER 1e-8 units) keeps every amount."""
    from alembic import command
    from alembic.config import Config

    from ledger_etl.ledger.db import MIGRATIONS

    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
    units = [-8043000000, 1, 9223372036854775807, 0, -9223372036854775808]
    with engine.begin() as conn:
        for i, unit in enumerate(units):
            conn.exec_driver_sql(
                "INSERT INTO ledger_entries (account_id, reference, posted_at, transaction_type,"
                " amount, currency, currency_raw, ledger_account, flags, row_sha256,"
                " first_run_id, last_run_id) VALUES ('A1', ?, '2025-01-01 00:00:00.000000',"
                " 'TRADE', ?, 'USD', 'USD', '4000', '', 'x', 'r', 'r')",
                (str(i), unit),
            )
        conn.exec_driver_sql(
            "INSERT INTO accounts (account_id, first_seen_at, last_seen_at)"
            " VALUES ('A1', '2025-01-01 00:00:00', '2025-01-01 00:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO balance_observations (account_id, observed_at, balance, deposit)"
            " VALUES ('A1', '2025-01-01 00:00:00.000000', 12345, NULL)"
        )
    upgrade(engine)
    with engine.connect() as conn:
        stored = conn.execute(
            select(s.ledger_entries.c.amount).order_by(s.ledger_entries.c.reference)
        ).scalars().all()  # fmt: skip
        observed = conn.execute(
            select(s.balance_observations.c.balance, s.balance_observations.c.deposit)
        ).one()
        kinds = conn.exec_driver_sql("SELECT DISTINCT typeof(amount) FROM ledger_entries").all()
    assert stored == [Decimal(u).scaleb(-8, s.SUM_CONTEXT) for u in units]
    assert tuple(observed) == (Decimal("0.00012345"), None)
    assert kinds == [("text",)]


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
