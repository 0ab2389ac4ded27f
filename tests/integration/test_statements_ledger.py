"""Statements from a real ledger (SQLite and PostgreSQL) synced from the simulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from ledger_etl.cli import main as cli
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements import (
    UnsafeNameError,
    build_statement,
    parse_month,
    publish_statement,
    read_statement_inputs,
    verify_tree,
)
from tests.conftest import database_url_of, make_server
from tests.integration.ledger_helpers import account_ids, ledger_amounts, sync, truth

HISTORY_START = datetime(2025, 1, 1, tzinfo=UTC)
MONTHS = [f"2025-{m:02d}" for m in range(1, 13)]


def truth_balance(server: SimulatorServer, account: str, at: datetime) -> Decimal:
    response = httpx.get(
        f"{server.url}/_sim/truth/balance",
        params={"account": account, "at": at.isoformat()},
        timeout=60,
    )
    response.raise_for_status()
    return Decimal(response.json()["balance"])


@pytest.mark.slow
def test_twelve_months_chain_reconcile_and_equal_ground_truth(
    shared_sim: SimulatorServer, ledger_engine: Engine, tmp_path: Path
) -> None:
    # Up to the simulator's now: reconciliation rolls the sync-time balance back to month end.
    report = sync(shared_sim, ledger_engine, HISTORY_START, datetime(2026, 1, 16, tzinfo=UTC))
    assert report.ok
    accounts = account_ids(shared_sim)
    assert len(accounts) == 2
    for account in accounts:
        previous_closing = Decimal(0)
        for month in MONTHS:
            period = parse_month(month)
            statement = build_statement(read_statement_inputs(ledger_engine, account, period))
            assert all(c.ok for c in statement.checks), statement.checks
            assert statement.opening_balance == previous_closing, month
            previous_closing = statement.closing_balance
            assert statement.status == "FINAL", (month, statement.coverage.gaps)
            stored = ledger_amounts(ledger_engine, account, period.start, period.end)
            assert statement.movement == sum(stored.values(), Decimal(0))
            assert sum(t.amount for t in statement.totals_by_type) == statement.movement
            assert sum(t.amount for t in statement.totals_by_ledger_account) == statement.movement
            assert {ln.entry.reference for ln in statement.lines} == set(stored)
            assert statement.reconciliation.status == "RECONCILED", statement.reconciliation
            acts = truth(shared_sim, "activity", account, period.start, period.end)
            assert len(statement.activity) == len(acts)
        december = parse_month("2025-12")
        assert previous_closing == truth_balance(shared_sim, account, december.end)
        result = publish_statement(ledger_engine, account, "2025-12", tmp_path, run_id="t")
        assert result.status == "written"
        assert result.statement.reconciliation.status == "RECONCILED"
        assert result.statement.reconciliation.difference == 0
        manifest = json.loads((result.folder / "manifest.json").read_text())
        assert manifest["totals"]["closing_balance"] == str(previous_closing)
    assert verify_tree(tmp_path) == []


def test_late_row_makes_v2_with_a_diff_and_v1_stays(ledger_engine: Engine, tmp_path: Path) -> None:
    server = make_server(rate_limit_per_second=0)
    try:
        late_seconds = 40 * 86400  # rows of December stay hidden until mid-February
        server.simulator.faults.replace(
            {"late_arrival": [{"endpoint": "transactions", "seconds": late_seconds,
                               "fraction": 0.05}]}
        )  # fmt: skip
        december = parse_month("2025-12")
        account = account_ids(server)[0]
        assert sync(server, ledger_engine, december.start, december.end, [account]).ok
        v1 = publish_statement(ledger_engine, account, "2025-12", tmp_path, run_id="first")
        assert (v1.status, v1.version) == ("written", 1)
        v1_files = {p.name: p.read_bytes() for p in v1.folder.iterdir()}
        v1_refs = {ln.entry.reference for ln in v1.statement.lines}
        expected = {r["reference"] for r in truth(server, "transactions", account,
                                                  december.start, december.end)}  # fmt: skip
        hidden = expected - v1_refs
        assert hidden, "the fault should have hidden some December rows"

        again = publish_statement(ledger_engine, account, "2025-12", tmp_path)
        assert (again.status, again.folder) == ("unchanged", v1.folder)

        server.simulator.clock.advance(late_seconds + 86400)
        assert sync(server, ledger_engine, december.start, december.end, [account]).ok
        v2 = publish_statement(ledger_engine, account, "2025-12", tmp_path, run_id="second")
        assert (v2.status, v2.version, v2.folder.name) == ("written", 2, "v2")
        assert {ln.entry.reference for ln in v2.statement.lines} == expected
        diff = json.loads((v2.folder / "statement.json").read_text())["diff"]
        assert set(diff["added"]) == hidden
        assert diff["removed"] == [] and diff["changed"] == []
        added_sum = sum(
            (ln.entry.amount for ln in v2.statement.lines if ln.entry.reference in hidden),
            Decimal(0),
        )
        assert Decimal(diff["closing_balance_delta"]) == added_sum
        assert Decimal(diff["opening_balance_delta"]) == 0
        assert {p.name: p.read_bytes() for p in v1.folder.iterdir()} == v1_files
        index = json.loads((v1.folder.parent / "versions.json").read_text())
        assert [(v["version"], v["state"]) for v in index["versions"]] == [
            (1, "superseded"),
            (2, "current"),
        ]

        runner = CliRunner()
        out = runner.invoke(
            cli,
            ["statement", "--month", "2025-12", "--account", account, "--out", str(tmp_path),
             "--database-url", database_url_of(ledger_engine)],
        )  # fmt: skip
        assert out.exit_code == 0, out.output
        assert f"unchanged: {v2.folder}" in out.output
        assert sorted(p.name for p in v1.folder.parent.iterdir() if not p.name.startswith(".")) == [
            "v1", "v2", "versions.json",
        ]  # fmt: skip
        verified = runner.invoke(cli, ["verify", str(tmp_path)])
        assert verified.exit_code == 0, verified.output
    finally:
        server.stop()


def test_statement_cli_writes_every_account_and_refuses_traversal(
    shared_sim: SimulatorServer, ledger_engine: Engine, tmp_path: Path
) -> None:
    november = parse_month("2025-11")
    assert sync(shared_sim, ledger_engine, november.start, november.end).ok
    url = database_url_of(ledger_engine)
    out_dir = tmp_path / "exports"
    runner = CliRunner()
    out = runner.invoke(
        cli, ["statement", "--month", "2025-11", "--out", str(out_dir), "--database-url", url,
              "--format", "csv,json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    # Each account: its folder, then what was published in it (indented), on stdout in order.
    lines = out.stdout.splitlines()
    folders = [Path(line) for line in lines[0::2]]
    assert all(line.startswith("  ") and " v1: " in line for line in lines[1::2]), lines
    assert sorted(f.parent.parent.name for f in folders) == sorted(account_ids(shared_sim))
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == [
            "audit.jsonl", "manifest.json", "statement.csv", "statement.json",
        ]  # fmt: skip
    for bad in (["--account", "../../etc"], ["--account", "/abs"], ["--month", "2025-11/../x"]):
        args = ["statement", "--month", "2025-11", "--out", str(out_dir), "--database-url", url]
        refused = runner.invoke(cli, args + bad)
        assert refused.exit_code == 2, refused.output
    for account, month in (("../x", "2025-11"), ("a\x00b", "2025-11"), ("ok", "../2025-11")):
        with pytest.raises(UnsafeNameError):
            publish_statement(ledger_engine, account, month, out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(account_ids(shared_sim))


def test_totals_by_type_carry_human_names(shared_sim: SimulatorServer, tmp_path: Path) -> None:
    """`totals_by_type[].name` is what a person calls the type, never the code again."""
    from ledger_etl.ledger.chart import TYPE_NAMES
    from ledger_etl.ledger.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    account = account_ids(shared_sim)[0]
    sync(shared_sim, engine, datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 11, tzinfo=UTC),
         [account])  # fmt: skip
    statement = build_statement(read_statement_inputs(engine, account, parse_month("2025-03")))
    totals = {t.key: t.name for t in statement.totals_by_type}
    assert len(totals) >= 3, totals
    assert totals == {key: TYPE_NAMES[key] for key in totals}
    assert all(name != key for key, name in totals.items())
