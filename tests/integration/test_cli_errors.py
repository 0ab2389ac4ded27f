"""Errors a person meets on the command line: one clear line, the documented exit status, no
traceback and no secret. One table; a new case is one line."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ledger_etl.cli import EXIT_API, EXIT_DATABASE, EXIT_USAGE, main

UNREACHABLE_PG = "postgresql://ledger:pg-Secret-77@127.0.0.1:1/ledger"
DAYS = ["--from", "2025-02-01", "--to", "2025-02-02"]
FAST_LOCK = {"LEDGER_SQLITE_BUSY_TIMEOUT": "1"}
_HOLD = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=" + sys.argv[2])
db.execute("BEGIN EXCLUSIVE")
db.execute("CREATE TABLE held (x)")
print("locked", flush=True)
sys.stdin.read()
"""


def _locked(journal: str) -> Callable[[Path], Iterator[dict[str, str]]]:
    """The ledger file, held under an exclusive lock by another process for the whole case."""

    @contextmanager
    def hold(tmp_path: Path) -> Iterator[dict[str, str]]:
        path = tmp_path / "ledger.sqlite"
        holder = subprocess.Popen(
            [sys.executable, "-c", _HOLD, str(path), journal],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            yield {}
        finally:
            holder.communicate("", timeout=30)  # closing stdin ends it, releasing the lock

    return hold


@contextmanager
def _read_only(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A SQLite file opened read-only (`mode=ro`: file modes do not stop root)."""
    path = tmp_path / "read-only.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE kept (x)")
    db.close()
    yield {"LEDGER_DATABASE_URL": f"sqlite:///file:{path}?mode=ro&uri=true"}


def full_width(text: str) -> str:
    """The same text with full-width digits (U+FF10..U+FF19), which `\\d` would accept."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in text)


CASES = [
    # (id, arguments, environment overrides, exit status, text the line must hold)
    ("month_past_9998", ["statement", "--month", "9999-12"], {}, EXIT_USAGE, "9998-12"),
    ("month_full_width", ["statement", "--month", full_width("2025-03")], {}, EXIT_USAGE, "ASCII"),
    ("month_zero", ["statement", "--month", "2025-00"], {}, EXIT_USAGE, "YYYY-MM"),
    ("month_future", ["statement", "--month", "9998-12"], {}, EXIT_USAGE, "has not started"),
    ("day_year_one", ["sync", "--from", "0001-01-01", "--to", "0001-01-02"], {}, EXIT_USAGE,
     "out of range"),
    ("day_full_width", ["sync", "--from", full_width("2025-02-01"), "--to", "2025-02-03"], {},
     EXIT_USAGE, "ASCII"),
    ("gaps_year_one", ["gaps", "--from", "0001-01-01", "--to", "0001-01-02"], {}, EXIT_USAGE,
     "out of range"),
    ("postgres_unreachable", ["gaps", *DAYS], {"LEDGER_DATABASE_URL": UNREACHABLE_PG},
     EXIT_DATABASE, "the ledger database failed"),
    ("postgres_unreachable_statement", ["statement", "--month", "2025-02"],
     {"LEDGER_DATABASE_URL": UNREACHABLE_PG}, EXIT_DATABASE, "the ledger database failed"),
    ("api_unreachable", ["sync", *DAYS], {"CAPITAL_API_URL": "http://127.0.0.1:1"}, EXIT_API,
     "POST /session"),
    ("database_url_scheme", ["gaps", *DAYS], {"LEDGER_DATABASE_URL": "mysql://u:pw@h/db"},
     EXIT_USAGE, "SQLite or PostgreSQL"),
    # A sixth item prepares the case (and undoes it): it may add environment overrides.
    ("sqlite_locked", ["statement", "--month", "2025-02"], FAST_LOCK, EXIT_DATABASE,
     "locked for more than 1 s", _locked("DELETE")),
    ("sqlite_locked_wal_writer", ["db", "upgrade"], FAST_LOCK, EXIT_DATABASE,
     "database is locked (another process", _locked("WAL")),
    ("sqlite_busy_timeout_text", ["gaps", *DAYS], {"LEDGER_SQLITE_BUSY_TIMEOUT": "soon"},
     EXIT_USAGE, "LEDGER_SQLITE_BUSY_TIMEOUT must be a number of seconds"),
    ("sqlite_read_only", ["db", "upgrade"], {}, EXIT_DATABASE, "read-only", _read_only),
    ("sqlite_read_only_gaps", ["gaps", *DAYS], {}, EXIT_DATABASE, "read-only", _read_only),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "status", "text", "prepare"),
    [(*case[1:5], case[5] if len(case) > 5 else None) for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_one_clear_line_and_the_documented_status(
    tmp_path: Path,
    args: list[str],
    env: dict[str, str],
    status: int,
    text: str,
    prepare: Callable[[Path], Any] | None,
) -> None:
    if prepare is None:
        _one_clear_line(tmp_path, args, env, status, text)
        return
    with prepare(tmp_path) as more:
        _one_clear_line(tmp_path, args, {**env, **more}, status, text)


def _one_clear_line(
    tmp_path: Path, args: list[str], env: dict[str, str], status: int, text: str
) -> None:
    environment = {
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        "LEDGER_EXPORT_DIR": str(tmp_path / "exports"),
        "CAPITAL_API_KEY": "key-Secret-1",
        "CAPITAL_IDENTIFIER": "someone@example.com",
        "CAPITAL_PASSWORD": "pw-Secret-2",
        "CAPITAL_RATE_LIMIT": "200",
        **env,
    }
    result = CliRunner().invoke(main, args, env=environment)
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == status, result.output
    assert len(lines) == 1 and text in lines[0], result.output
    assert "Traceback" not in result.output
    for secret in ("Secret-77", "key-Secret-1", "pw-Secret-2"):
        assert secret not in result.output


def test_the_installed_command_prints_no_traceback(tmp_path: Path) -> None:
    """The same through a real process: stderr holds the one line, stdout nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "ledger_etl.cli", "gaps", *DAYS],
        env={"LEDGER_DATABASE_URL": UNREACHABLE_PG, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == EXIT_DATABASE, done.stderr
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("Error: the ledger database")
    assert "Secret-77" not in done.stderr
