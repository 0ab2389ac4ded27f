"""Errors a person meets on the command line: one clear line, the documented exit status, no
traceback and no secret. One table; a new case is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger_etl.cli import EXIT_API, EXIT_DATABASE, EXIT_USAGE, main

UNREACHABLE_PG = "postgresql://ledger:pg-Secret-77@127.0.0.1:1/ledger"
DAYS = ["--from", "2025-02-01", "--to", "2025-02-02"]


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
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "status", "text"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_one_clear_line_and_the_documented_status(
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
