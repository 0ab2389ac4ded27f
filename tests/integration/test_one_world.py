"""One ledger, one source: the bundled simulator serves the world a ledger was filled from, to
the demo, the CLI and Dagster runs alike; another source for the same accounts is refused."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ledger_etl.cli import EXIT_USAGE, main
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.db import make_engine
from ledger_etl.sources import bundled_world, default_bundled_start
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, make_server
from tests.integration.ledger_helpers import account_ids


def _ledger_env(tmp_path: Path) -> dict[str, str]:
    """No CAPITAL_* variables: the bundled simulator."""
    return {
        "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.sqlite'}",
        "LEDGER_EXPORT_DIR": str(tmp_path / "exports"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "CAPITAL_API_URL": "",
        "CAPITAL_API_KEY": "",
        "CAPITAL_IDENTIFIER": "",
        "CAPITAL_PASSWORD": "",
        "CAPITAL_RATE_LIMIT": "50",
    }


def test_the_default_world_starts_three_months_back() -> None:
    assert default_bundled_start(date(2026, 12, 3)) == date(2026, 9, 1)
    assert default_bundled_start(date(2026, 2, 28)) == date(2025, 11, 1)
    assert default_bundled_start(date(2026, 1, 1)) == date(2025, 10, 1)


def test_a_ledger_keeps_the_world_it_was_filled_from(tmp_path: Path) -> None:
    """Filled on one day, the ledger gets the same world back on any later day."""
    env = _ledger_env(tmp_path)
    today = datetime.now(UTC).date()
    synced = CliRunner().invoke(
        main,
        ["sync", "--from", f"{today - timedelta(days=2)}", "--to", f"{today}"],
        env=env,
    )
    assert synced.exit_code == 0, synced.output
    engine = make_engine(env["LEDGER_DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(select(s.account_sources.c.source_url, s.account_sources.c.detail))
        recorded = {(url, json.dumps(detail, sort_keys=True)) for url, detail in rows}
    assert len(recorded) == 1
    url, detail = next(iter(recorded))
    assert url == "bundled-simulator"
    assert json.loads(detail)["start"] == default_bundled_start(today).isoformat()
    later = today + timedelta(days=400)
    assert bundled_world(engine, later).start == default_bundled_start(today)
    assert bundled_world(None, later).start == default_bundled_start(later)


def test_another_source_for_the_same_accounts_is_refused_until_reset(tmp_path: Path) -> None:
    """A separately served simulator (same seed, so the same account ids, but another history
    start) is another source: refused with a way forward, then replaced with --reset-source."""
    env = _ledger_env(tmp_path)
    today = datetime.now(UTC).date()
    days = ["--from", f"{today - timedelta(days=2)}", "--to", f"{today}"]
    assert CliRunner().invoke(main, ["sync", *days], env=env).exit_code == 0
    other = make_server(start=date(2025, 1, 1), rate_limit_per_second=0)
    try:
        external = {
            **env, "CAPITAL_API_URL": other.url, "CAPITAL_API_KEY": API_KEY,
            "CAPITAL_IDENTIFIER": IDENTIFIER, "CAPITAL_PASSWORD": PASSWORD,
        }  # fmt: skip
        week = ["--from", "2025-06-01", "--to", "2025-06-08"]
        refused = CliRunner().invoke(main, ["sync", *week], env=external)
        assert refused.exit_code == EXIT_USAGE, refused.output
        assert "bundled simulator" in refused.output and "--reset-source" in refused.output
        engine = make_engine(env["LEDGER_DATABASE_URL"])
        with engine.connect() as conn:
            stored = conn.execute(select(s.fetch_log.c.window_start)).scalars().all()
        assert stored and min(stored) >= datetime(2025, 12, 1, tzinfo=UTC)  # nothing of 2025-06

        reset = CliRunner().invoke(main, ["sync", *week, "--reset-source"], env=external)
        assert reset.exit_code == 0, reset.output
        with engine.connect() as conn:
            sources = conn.execute(select(s.account_sources.c.source_url)).scalars().all()
            stored = conn.execute(select(s.fetch_log.c.window_start)).scalars().all()
        assert set(sources) == {other.url} and len(sources) == len(account_ids(other))
        assert max(stored) < datetime(2025, 6, 9, tzinfo=UTC)  # the old world's rows are gone
    finally:
        other.stop()


@pytest.mark.slow
def test_the_demo_then_the_cli_read_one_world(tmp_path: Path) -> None:
    """`ledger-etl demo`, then a CLI sync of recent days and the last month's statement on the
    same ledger: the same world, so the statement is unchanged (FINAL, RECONCILED)."""
    env = _ledger_env(tmp_path)
    demo = CliRunner().invoke(main, ["demo", "--months", "1"], env=env)
    assert demo.exit_code == 0, demo.output
    today = datetime.now(UTC).date()
    month = f"{today.replace(day=1) - timedelta(days=1):%Y-%m}"
    synced = CliRunner().invoke(
        main, ["sync", "--from", f"{today - timedelta(days=2)}", "--to", f"{today}"], env=env
    )
    assert synced.exit_code == 0, synced.output
    published = CliRunner().invoke(main, ["statement", "--month", month], env=env)
    assert published.exit_code == 0, published.output
    lines = published.output.splitlines()
    assert [line for line in lines if line.startswith("unchanged: ")], published.output
    verdicts = [line for line in lines if " v1: " in line]
    assert verdicts and all("FINAL, reconciliation RECONCILED" in v for v in verdicts), lines


def test_the_current_month_is_published_only_as_provisional(tmp_path: Path) -> None:
    env = _ledger_env(tmp_path)
    today = datetime.now(UTC).date()
    assert (
        CliRunner()
        .invoke(
            main, ["sync", "--from", f"{today - timedelta(days=1)}", "--to", f"{today}"], env=env
        )
        .exit_code
        == 0
    )
    month = f"{today:%Y-%m}"
    refused = CliRunner().invoke(main, ["statement", "--month", month], env=env)
    assert refused.exit_code == EXIT_USAGE and "--provisional" in refused.output
    assert not (tmp_path / "exports").exists()
    published = CliRunner().invoke(main, ["statement", "--month", month, "--provisional"], env=env)
    assert published.exit_code == 0, published.output
    notes = [line for line in published.output.splitlines() if " v1: " in line]
    assert notes and all("PROVISIONAL" in n and "month not closed" in n for n in notes), notes
