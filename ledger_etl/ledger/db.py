"""Engines for the ledger: SQLite (WAL, busy timeout, serialized writers) or PostgreSQL (psycopg 3).

URLs: `sqlite:///path/ledger.sqlite` or `postgresql://user@host/db` (the psycopg 3 driver is
selected automatically). Migrations run with `upgrade(engine)` (Alembic, head).
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from ledger_etl.errors import InputError
from ledger_etl.ledger.schema import MoneySum
from ledger_etl.settings import sqlite_busy_timeout

MIGRATIONS = Path(__file__).with_name("migrations")
READS_ONLY = "ledger_reads_only"  # execution option of `reader_engine`
SQLITE_AUTOCHECKPOINT = 1000  # pages: SQLite's default, kept for every other writer
log = logging.getLogger(__name__)


class DatabaseUrlError(InputError):
    """A LEDGER_DATABASE_URL that is not SQLite or PostgreSQL (credentials never echoed)."""


def normalize_url(url: str) -> str:
    try:
        parsed = make_url(url)
    except Exception:
        raise DatabaseUrlError("LEDGER_DATABASE_URL is not a valid SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend != "sqlite":
        raise DatabaseUrlError(f"LEDGER_DATABASE_URL must be SQLite or PostgreSQL, not {backend!r}")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str, *, busy_timeout: float | None = None, **kwargs: Any) -> Engine:
    """An engine for the URL; on SQLite a lock held by another process is waited for
    `busy_timeout` seconds (default `LEDGER_SQLITE_BUSY_TIMEOUT`, 60) before it fails."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        if busy_timeout is None:
            busy_timeout = sqlite_busy_timeout()
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_timeout}, **kwargs)
        _sqlite_setup(engine, busy_timeout)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_setup(engine: Engine, busy_timeout: float) -> None:
    busy_ms = max(1, round(busy_timeout * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's begin event issue BEGIN IMMEDIATE: one writer at a time, and a
        # second writer waits (busy timeout) instead of failing mid-transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # Amounts are decimal TEXT on SQLite: `schema.money_sum` sums them exactly through this.
        dbapi_connection.create_aggregate("ledger_money_sum", 1, MoneySum)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A reader's connection (see `reader_engine`) takes no lock: in WAL mode it reads its
        # snapshot while one writer goes on, instead of queueing behind every other writer.
        if connection.get_execution_options().get(READS_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def reader_engine(engine: Engine) -> Engine:
    """The same engine and pool for code that only reads: on SQLite its transactions begin
    deferred (no write lock), so concurrent readers never wait for each other or for a writer.
    A write through it could meet a busy database without waiting: write through `engine`."""
    return engine.execution_options(**{READS_ONLY: True})


@contextmanager
def checkpoint_deferred(connection: Connection) -> Iterator[None]:
    """On SQLite, keep this connection's commits from checkpointing the WAL.

    By default the commit that takes the WAL past 1,000 pages copies it back into the database
    file before it returns: for a large ingest that is most of the commit's time, spent while
    the writer holds the lock. The run checkpoints once at its end instead (`checkpoint_wal`).
    Use it outside the transaction: `with engine.connect() as c, checkpoint_deferred(c),
    c.begin(): ...`. A no-op on PostgreSQL.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    # On the driver connection (autocommit): through SQLAlchemy it would begin a transaction.
    driver = connection.connection.driver_connection
    driver.execute("PRAGMA wal_autocheckpoint=0")  # type: ignore[union-attr]
    try:
        yield
    finally:
        if not connection.closed and not connection.invalidated:
            driver.execute(f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT}")  # type: ignore[union-attr]


def defer_checkpoints(engine: Engine) -> None:
    """On SQLite, no commit through `engine` checkpoints the WAL any more: a long-running
    service whose requests wait on commits checkpoints from a background loop instead
    (`checkpoint_wal`), so no request pays for copying the WAL back. A no-op on PostgreSQL."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _no_autocheckpoint(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")

    engine.dispose()  # connections opened before this point reopen with the setting


def checkpoint_wal(engine: Engine) -> float:
    """A passive WAL checkpoint on SQLite (it never waits for, nor blocks, readers or writers);
    returns the seconds it took (0 on PostgreSQL). Called at the end of each run."""
    if engine.dialect.name != "sqlite":
        return 0.0
    began = time.perf_counter()
    with engine.connect() as conn:  # outside any transaction: on the driver connection
        driver = conn.connection.driver_connection
        _busy, frames, copied = driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()  # type: ignore[union-attr]
    took = time.perf_counter() - began
    log.debug("WAL checkpoint: %s of %s frames copied in %.3f s", copied, frames, took)
    return took


@functools.cache
def _heads() -> frozenset[str]:
    """The migration heads this code ships (read once per process)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def at_heads(engine: Engine) -> bool:
    """True when the database already carries exactly this code's migration heads: one
    `SELECT`, where running Alembic costs tens of milliseconds (it loads every migration)."""
    try:
        with engine.connect() as connection:
            stored = connection.exec_driver_sql("SELECT version_num FROM alembic_version").all()
    except SQLAlchemyError:  # no version table yet: a new database
        return False
    return frozenset(row[0] for row in stored) == _heads()


def upgrade(engine: Engine) -> None:
    """Apply every Alembic migration up to its heads (idempotent; branches forked from one
    revision each keep their own head until the chain is joined). A database already at the
    heads costs one query."""
    if at_heads(engine):
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Two processes starting at once must not both create the tables.
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7042175301)")
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
