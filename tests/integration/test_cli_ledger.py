"""`ledger-etl sync`, `gaps` and `demo` through the command line, against a real simulator."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from ledger_etl.cli import main
from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, make_server
from tests.integration.ledger_helpers import account_ids


def _env(server: SimulatorServer, tmp_path: Path) -> dict[str, str]:
    return {
        "CAPITAL_API_URL": server.url,
        "CAPITAL_API_KEY": API_KEY,
        "CAPITAL_IDENTIFIER": IDENTIFIER,
        "CAPITAL_PASSWORD": PASSWORD,
        "CAPITAL_RATE_LIMIT": "200",
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
    }


def test_sync_then_gaps(shared_sim: SimulatorServer, tmp_path: Path) -> None:
    runner = CliRunner()
    env = _env(shared_sim, tmp_path)
    before = runner.invoke(main, ["gaps", "--from", "2025-02-01", "--to", "2025-02-08"], env=env)
    assert before.exit_code == 1
    synced = runner.invoke(main, ["sync", "--from", "2025-02-01", "--to", "2025-02-08"], env=env)
    assert synced.exit_code == 0, synced.output
    assert "complete" in synced.output
    for account in account_ids(shared_sim):
        assert account in synced.output
    covered = runner.invoke(main, ["gaps", "--from", "2025-02-01", "--to", "2025-02-08"], env=env)
    assert covered.exit_code == 0, covered.output
    wider = runner.invoke(main, ["gaps", "--from", "2025-01-30", "--to", "2025-02-09"], env=env)
    assert wider.exit_code == 1
    # The second before the synced range was covered too, by the fetch's start-edge probe.
    assert "transactions\t[2025-01-30T00:00:00Z, 2025-01-31T23:59:59Z)" in wider.output
    assert "activity\t[2025-02-08T00:00:00Z, 2025-02-09T00:00:00Z)" in wider.output
    unknown = runner.invoke(
        main, ["gaps", "--from", "2025-02-01", "--to", "2025-02-08", "--account", "nope"], env=env
    )
    assert unknown.exit_code == 2 and "unknown account(s) nope" in unknown.output


def test_time_before_a_proven_first_movement_is_no_gap(tmp_path: Path) -> None:
    """The whole history up to the broker's balance is synced: the ledger proves each account's
    first movement, and the weeks before it are not reported as gaps."""
    server = make_server(start=date(2025, 11, 1), rate_limit_per_second=0)
    try:
        env = _env(server, tmp_path)
        runner = CliRunner()
        synced = runner.invoke(
            main, ["sync", "--from", "2025-11-01", "--to", "2026-01-16"], env=env
        )
        assert synced.exit_code == 0, synced.output
        gaps = runner.invoke(main, ["gaps", "--from", "2025-10-01", "--to", "2025-11-10"], env=env)
        assert gaps.exit_code == 0, gaps.output
        proven = [line for line in gaps.output.splitlines() if "proven complete" in line]
        assert len(proven) == len(account_ids(server)), gaps.output
        assert "no gaps in [2025-10-01, 2025-11-10)" in gaps.output
    finally:
        server.stop()


def test_sync_with_a_permanently_failing_window_exits_nonzero(tmp_path: Path) -> None:
    server = make_server(
        rate_limit_per_second=0,
        faults={
            "rules": [
                {"kind": "status", "status": 503, "path": "^/history/transactions$", "after": 2}
            ]
        },
    )
    try:
        env = _env(server, tmp_path)
        account = account_ids(server)[0]
        runner = CliRunner()
        result = runner.invoke(
            main,
            ["sync", "--from", "2025-02-01", "--to", "2025-02-05", "--account", account],
            env=env,
        )
        assert result.exit_code == 1
        assert "INCOMPLETE" in result.output
        gaps = runner.invoke(
            main,
            ["gaps", "--from", "2025-02-01", "--to", "2025-02-05", "--account", account],
            env=env,
        )
        assert gaps.exit_code == 1
        assert "transactions" in gaps.output
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sync", "--from", "2025-02-10", "--to", "2025-02-01"], "must be before"),
        (["sync", "--from", "2025/02/01", "--to", "2025-02-03"], "YYYY-MM-DD"),
        (
            ["sync", "--from", "2025-02-01", "--to", "2025-02-03", "--account", "nope"],
            "unknown account",
        ),
    ],
)
def test_bad_arguments_get_clear_errors(
    shared_sim: SimulatorServer, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(main, args, env=_env(shared_sim, tmp_path))
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_settings_errors_are_clear(tmp_path: Path) -> None:
    env = {"CAPITAL_API_URL": "ftp://x", "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path}/l.db"}
    result = CliRunner().invoke(
        main, ["sync", "--from", "2025-02-01", "--to", "2025-02-02"], env=env
    )
    assert result.exit_code != 0
    assert "CAPITAL_API_URL" in result.output
