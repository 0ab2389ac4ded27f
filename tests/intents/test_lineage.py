"""The lineage of one intent, down to the ledger entry of its closed position, through
`ledger-etl lifecycle <intent id>`."""

from __future__ import annotations

import json
from datetime import timedelta

from click.testing import CliRunner

from ledger_etl.cli import main
from ledger_etl.sync import sync_range
from tests.conftest import database_url_of
from tests.intents.conftest import intent, wait_final


def test_an_intent_shows_whole_in_lifecycle(start_service, broker_client, intents_sim, intents_db):
    account = broker_client.accounts()[1].account_id
    # Hedging mode: the BUY opens its own position instead of netting against the world's.
    with broker_client.on_account(account):
        broker_client.request("PUT", "/accounts/preferences", json={"hedgingMode": True})
    svc = start_service()
    opened = svc.post(intent(account, alert_id="lineage-open", epic="EURUSD", size=2000))
    open_final = wait_final(svc, opened.json()["intent"]["id"])
    assert open_final["state"] == "ACCEPTED"
    order_id, position_id = open_final["deal_ids"]
    closed = svc.post(
        intent(account, alert_id="lineage-close", epic="EURUSD", action="close", size=None,
               deal_id=position_id)
    )  # fmt: skip
    close_final = wait_final(svc, closed.json()["intent"]["id"])
    assert close_final["state"] == "ACCEPTED", close_final
    assert close_final["deal_ids"] == [position_id]
    now = intents_sim.simulator.clock.now().replace(microsecond=0) + timedelta(seconds=1)
    report = sync_range(broker_client, intents_db, now - timedelta(hours=1), now, [account])
    assert report.ok

    runner = CliRunner()
    env = {"LEDGER_DATABASE_URL": database_url_of(intents_db)}
    shown = runner.invoke(main, ["lifecycle", open_final["id"], "--format", "json"], env=env)
    assert shown.exit_code == 0, shown.output
    lineage = json.loads(shown.output)
    assert lineage["intent"]["deal_reference"] == open_final["deal_reference"]
    assert [d["deal_id"] for d in lineage["deals"]] == [order_id, position_id]
    states = [t["to_state"] for t in lineage["intent_transitions"]]
    assert states == ["RECEIVED", "VALIDATED", "SUBMITTED", "ACCEPTED"]
    position = lineage["deals"][1]["lifecycle"]
    assert position["state"] == "CLOSED"
    trades = [t for t in lineage["transactions"] if t["transaction_type"] == "TRADE"]
    assert len(trades) == 1 and trades[0]["deal_id"] == position_id
    text = runner.invoke(main, ["lifecycle", f"intent:{open_final['id']}"], env=env)
    assert text.exit_code == 0
    assert f"deal {position_id} (position, EURUSD): CLOSED" in text.output
    assert "ledger " in text.output and "TRADE" in text.output
