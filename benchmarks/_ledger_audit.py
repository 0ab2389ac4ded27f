"""Counting the rows a benchmark step writes: row triggers on every ledger table.

A trigger adds a row to `write_audit` for each row inserted, updated or deleted, on both
backends; on PostgreSQL, `locked_rows` also finds rows a statement locked without changing them
(an `ON CONFLICT DO UPDATE ... WHERE false` does that, and it is a write to the page and WAL).
"""

from __future__ import annotations

from sqlalchemy import Engine

from ledger_etl.ledger import schema as s

_PG_FUNCTION = (
    "CREATE FUNCTION bench_audit_write() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN INSERT INTO write_audit VALUES (TG_TABLE_NAME); RETURN NULL; END $$"
)


def install_write_audit(engine: Engine) -> None:
    """Count every row written to any table of the ledger schema from now on."""
    tables = [t.name for t in s.metadata.sorted_tables]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE write_audit (tbl TEXT NOT NULL)")
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(_PG_FUNCTION)
        for table in tables:
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql(
                    f"CREATE TRIGGER audit_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION bench_audit_write()"
                )
                continue
            for op in ("INSERT", "UPDATE", "DELETE"):
                conn.exec_driver_sql(
                    f"CREATE TRIGGER audit_{table}_{op.lower()} AFTER {op} ON {table} "
                    f"BEGIN INSERT INTO write_audit VALUES ('{table}'); END"
                )


def written_rows(engine: Engine) -> dict[str, int]:
    """Rows written per table since `install_write_audit`; the count starts again after."""
    with engine.begin() as conn:
        rows = conn.exec_driver_sql("SELECT tbl, count(*) FROM write_audit GROUP BY tbl").all()
        conn.exec_driver_sql("DELETE FROM write_audit")
    return {row[0]: row[1] for row in rows}


def locked_rows(engine: Engine) -> int:
    """PostgreSQL: raw and ledger rows whose `xmax` says a later transaction locked or changed
    them (0 right after their insert). Always 0 on SQLite, which has no row locks."""
    if engine.dialect.name != "postgresql":
        return 0
    with engine.connect() as conn:
        return sum(
            conn.exec_driver_sql(f"SELECT count(*) FROM {t} WHERE xmax::text <> '0'").scalar_one()
            for t in ("ledger_entries", "raw_transactions")
        )


def bytes_per_row(engine: Engine, tables: tuple[str, ...]) -> dict[str, float]:
    """On-disk bytes per row of each table with its indexes (SQLite: its pages in dbstat;
    PostgreSQL: pg_total_relation_size, with TOAST), over its rows."""
    out = {}
    with engine.connect() as conn:
        for table in tables:
            rows = conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
            if engine.dialect.name == "postgresql":
                size = conn.exec_driver_sql(
                    f"SELECT pg_total_relation_size('{table}')"
                ).scalar_one()
            else:
                size = conn.exec_driver_sql(
                    "SELECT sum(pgsize) FROM dbstat WHERE name IN "
                    "(SELECT name FROM sqlite_schema WHERE tbl_name = ?)",
                    (table,),
                ).scalar_one()
            out[table] = size / rows if rows else float("nan")
    return out
