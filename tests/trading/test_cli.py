"""The trading commands over the simulator and a real database: snapshot, positions, orders,
exposure (table, JSON, CSV, XLSX with a manifest), lifecycle, verify-changelog, and bad input
answered with a clear error and exit status 2."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from ledger_etl.cli import main
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, database_url_of


@pytest.fixture
def env(frozen_sim, ledger_engine, tmp_path):
    return {
        "CAPITAL_API_URL": frozen_sim.url,
        "CAPITAL_API_KEY": API_KEY,
        "CAPITAL_IDENTIFIER": IDENTIFIER,
        "CAPITAL_PASSWORD": PASSWORD,
        "LEDGER_DATABASE_URL": database_url_of(ledger_engine),
        "LEDGER_EXPORT_DIR": str(tmp_path / "exports"),
    }


def test_trading_commands(env, frozen_sim, tmp_path):
    runner = CliRunner()
    account = frozen_sim.simulator.world.accounts[0].account_id
    policy = tmp_path / "policy.yaml"
    policy.write_text("require_stop: true\n")
    done = runner.invoke(main, ["snapshot", "--account", account, "--policy", str(policy)], env=env)
    assert done.exit_code == 0, done.output
    assert "complete" in done.output and "new" in done.output
    alerts = (tmp_path / "exports" / "_audit" / "alerts.jsonl").read_text().splitlines()
    assert alerts and all(json.loads(a)["rule"] == "require_stop" for a in alerts)

    listed = runner.invoke(main, ["positions", "--format", "json"], env=env)
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)["rows"]
    truth = frozen_sim.simulator.world.open_positions(0, frozen_sim.simulator.clock.now())
    assert {r["deal_id"] for r in rows} == {p.deal_id for p in truth}
    assert all(r["state"] in ("OPEN", "AMENDED") for r in rows)
    table = runner.invoke(main, ["orders", "--state", "ACCEPTED"], env=env)
    assert table.exit_code == 0 and "as_of=" in table.output

    as_json = runner.invoke(main, ["exposure", "--format", "json"], env=env)
    report = json.loads(as_json.output)
    assert report["account_id"] == account and len(report["positions"]) == len(truth)
    as_csv = runner.invoke(main, ["exposure", "--format", "csv"], env=env)
    lines = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [r["notional"] for r in lines] == [p["notional"] for p in report["positions"]]
    out = tmp_path / "report" / "exposure.xlsx"
    wrote = runner.invoke(main, ["exposure", "--format", "xlsx", "--out", str(out)], env=env)
    assert wrote.exit_code == 0, wrote.output
    manifest = json.loads((out.parent / "exposure.xlsx.manifest.json").read_text())
    assert (
        manifest["files"]["exposure.xlsx"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    )
    sheet = load_workbook(out)["positions"]
    assert sheet.max_row == len(truth) + 1

    deal = rows[0]["deal_id"]
    story = runner.invoke(main, ["lifecycle", deal, "--format", "json"], env=env)
    assert story.exit_code == 0, story.output
    assert json.loads(story.output)["transitions"][0]["to_state"] == "OPEN"
    verified = runner.invoke(main, ["verify-changelog"], env=env)
    assert verified.exit_code == 0 and "0 problems" in verified.output


BAD_INPUT = (
    (["positions", "--at", "yesterday"], "not an ISO 8601 instant"),
    (["lifecycle", "NOPE"], "no lifecycle for deal NOPE"),
    (["exposure", "--at", "2000-01-01T00:00:00"], "no complete snapshot at or before"),
    (["exposure", "--format", "xlsx"], "needs --out"),
)


def test_bad_input_is_a_clear_error(env, frozen_sim):
    runner = CliRunner()
    account = frozen_sim.simulator.world.accounts[0].account_id
    assert runner.invoke(main, ["snapshot", "--account", account], env=env).exit_code == 0
    for args, message in BAD_INPUT:
        result = runner.invoke(main, args, env=env)
        assert result.exit_code == 2 and message in result.output, (args, result.output)


def test_empty_policy_file_is_refused_before_polling(env, tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = CliRunner().invoke(main, ["snapshot", "--policy", str(empty)], env=env)
    assert result.exit_code == 2 and "is empty" in result.output
