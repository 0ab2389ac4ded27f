"""`ledger-etl intents ...`: refusals at start, the listing with latency and slippage."""

from __future__ import annotations

import csv
import io
import json

from click.testing import CliRunner

from ledger_etl.cli import main
from tests.conftest import database_url_of
from tests.intents.conftest import SECRET, intent, wait_final

LIVE_HOST = {
    "CAPITAL_API_URL": "https://api-capital.backend-capital.com",
    "CAPITAL_API_KEY": "k",
    "CAPITAL_IDENTIFIER": "someone@example.com",
    "CAPITAL_PASSWORD": "p",
}


def test_serve_refuses_to_start_without_a_secret(tmp_path):
    env = {"LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'l.sqlite'}", "LEDGER_INTENTS_SECRET": ""}
    result = CliRunner().invoke(main, ["intents", "serve"], env=env)
    assert result.exit_code == 2
    assert "LEDGER_INTENTS_SECRET must be set" in result.output


def test_live_on_a_live_host_is_refused_without_the_flag(tmp_path):
    env = {**LIVE_HOST, "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'l.sqlite'}",
           "LEDGER_INTENTS_SECRET": SECRET, "CAPITAL_ALLOW_LIVE_TRADING": "false"}  # fmt: skip
    result = CliRunner().invoke(main, ["intents", "serve", "--live"], env=env)
    assert result.exit_code == 2
    assert "refusing to send orders to a live account" in result.output
    assert "CAPITAL_ALLOW_LIVE_TRADING=true" in result.output
    assert "CFDs are complex instruments" in result.output  # the risk warning comes first


def test_live_refusal_and_opt_in_decided_by_the_host():
    from ledger_etl.capital import CapitalClient
    from ledger_etl.intents.runner import LiveTradingRefused, Options, check_live

    for url, live in (
        ("https://api-capital.backend-capital.com", True),
        ("https://demo-api-capital.backend-capital.com", False),
        ("http://127.0.0.1:8765", False),
        ("http://broker.example.com", True),
    ):
        client = CapitalClient(url, "k", "id", "pw")
        try:
            refused = False
            try:
                check_live(client, Options(SECRET, live=True))
            except LiveTradingRefused:
                refused = True
            assert refused == live, url
            check_live(client, Options(SECRET, live=True, allow_live_trading=True))
            check_live(client, Options(SECRET, live=False))  # a dry run is never refused
        finally:
            client.close()


def test_list_shows_states_latency_and_slippage(start_service, account_id, intents_db):
    svc = start_service()
    accepted = svc.post(intent(account_id, alert_id="list-1", epic="GOLD", size=1))
    rejected = svc.post(intent(account_id, alert_id="list-2", epic="GOLD", size="0.05"))
    wait_final(svc, accepted.json()["intent"]["id"])
    env = {"LEDGER_DATABASE_URL": database_url_of(intents_db)}
    runner = CliRunner()
    as_json = json.loads(
        runner.invoke(main, ["intents", "list", "--format", "json"], env=env).output
    )
    by_id = {r["id"]: r for r in as_json}
    row = by_id[accepted.json()["intent"]["id"]]
    assert row["state"] == "ACCEPTED" and row["ack_ms"] >= 0 and row["confirm_ms"] > 0
    assert row["slippage"] is not None and row["filled_level"] is not None
    assert by_id[rejected.json()["intent"]["id"]]["state"] == "REJECTED"
    only = runner.invoke(
        main, ["intents", "list", "--state", "rejected", "--format", "csv"], env=env
    )
    rows = list(csv.DictReader(io.StringIO(only.output)))
    assert [r["id"] for r in rows] == [rejected.json()["intent"]["id"]]
    table = runner.invoke(main, ["intents", "list"], env=env)
    assert table.exit_code == 0 and "ACCEPTED" in table.output
