"""A SIGKILL between the POST and the confirm, then a restart: one order, the intent ACCEPTED.

The service runs as `ledger-etl intents serve --live` in its own process, against the simulator
on loopback and the test's ledger database; `LEDGER_ETL_KILL_AT` makes it kill itself right
after the broker answered the POST (before the deal reference is stored) or right after storing
the reference (before the confirm). The restarted process must recover the intent from the
broker's state without posting again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ledger_etl.ledger.schema import trade_intents
from ledger_etl.simulator.server import free_port
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, database_url_of
from tests.intents.conftest import SECRET, intent, orders_posted


def _start(sim_url: str, db_url: str, port: int, kill_at: str | None) -> subprocess.Popen:
    env = {
        **os.environ,
        "CAPITAL_API_URL": sim_url,
        "CAPITAL_API_KEY": API_KEY,
        "CAPITAL_IDENTIFIER": IDENTIFIER,
        "CAPITAL_PASSWORD": PASSWORD,
        "LEDGER_DATABASE_URL": db_url,
        "LEDGER_INTENTS_SECRET": SECRET,
    }
    env.pop("LEDGER_ETL_KILL_AT", None)
    if kill_at:
        env["LEDGER_ETL_KILL_AT"] = kill_at
    cli = Path(sys.executable).with_name("ledger-etl")
    return subprocess.Popen(
        [str(cli), "intents", "serve", "--live", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def _wait_up(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read().decode() if process.stderr else "died")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the intents service did not start")


def _row(engine, key: str):
    with engine.connect() as conn:
        return conn.execute(select(trade_intents).where(trade_intents.c.idem_key == key)).first()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["intent_after_post", "intent_before_confirm"])
def test_sigkill_between_post_and_confirm_then_restart(point, intents_sim, intents_db, account_id):
    db_url = database_url_of(intents_db)
    port = free_port()
    before = orders_posted(intents_sim)
    process = _start(intents_sim.url, db_url, port, point)
    try:
        _wait_up(port, process)
        body = intent(account_id, alert_id=f"crash-{point}", epic="GOLD", size="0.5")
        try:
            httpx.post(f"http://127.0.0.1:{port}/intents", json=body, timeout=10)
        except httpx.TransportError:
            pass  # the process may die before its 202 is written: the intent is stored anyway
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    row = _row(intents_db, f"alert:crash-{point}")
    assert row.state == "SUBMITTED"
    assert (row.deal_reference is None) == (point == "intent_after_post")
    assert orders_posted(intents_sim) - before == 1

    restarted = _start(intents_sim.url, db_url, port, None)
    try:
        _wait_up(port, restarted)
        deadline = time.monotonic() + 20
        while _row(intents_db, row.idem_key).state not in ("ACCEPTED", "REJECTED"):
            assert time.monotonic() < deadline, _row(intents_db, row.idem_key).state
            time.sleep(0.1)
        # A repeated delivery after the restart is answered from the record.
        again = httpx.post(f"http://127.0.0.1:{port}/intents", json=body, timeout=10)
        assert again.status_code == 200 and again.json()["intent"]["state"] == "ACCEPTED"
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=20)
    final = _row(intents_db, row.idem_key)
    assert final.state == "ACCEPTED"
    assert "UNKNOWN" in [s["state"] for s in final.steps]
    assert final.deal_ids
    assert orders_posted(intents_sim) - before == 1
