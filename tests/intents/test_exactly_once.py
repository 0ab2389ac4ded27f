"""Exactly-once toward the broker, over real HTTP: the webhook in front of the simulator.

Each case counts the orders the simulator dealt (POSTs answered with a deal reference) before
and after, so a double shows as 2, whatever the intent's own record says.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx
import pytest

from ledger_etl.capital import CapitalClient
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD
from tests.intents.conftest import (
    clear_faults,
    intent,
    orders_posted,
    set_faults,
    wait_final,
)


def test_the_same_alert_five_times_at_once_makes_one_order(start_service, account_id, intents_sim):
    svc = start_service()
    before = orders_posted(intents_sim)
    body = intent(account_id, alert_id="tv-123", epic="GOLD", size=1)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def deliver() -> None:
        with httpx.Client(base_url=svc.service.url, timeout=30) as http:
            response = http.post("/intents", json=body)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a.status_code for a in answers).count(202) == 1
    assert all(a.status_code in (200, 202) for a in answers)
    ids = {a.json()["intent"]["id"] for a in answers}
    assert len(ids) == 1
    final = wait_final(svc, ids.pop())
    assert final["state"] == "ACCEPTED"
    assert final["deal_reference"].startswith("o_")
    assert len(final["deal_ids"]) == 2  # the order's dealId, then the opened position's
    # A late repeat, after the order was filled, still sends nothing.
    late = svc.post(body)
    assert late.status_code == 200 and late.json()["duplicate"] is True
    assert late.json()["intent"]["state"] == "ACCEPTED"
    assert orders_posted(intents_sim) - before == 1


def test_a_different_payload_under_a_used_alert_id_is_a_conflict(
    start_service, account_id, intents_sim
):
    svc = start_service()
    before = orders_posted(intents_sim)
    first = svc.post(intent(account_id, alert_id="tv-409", size=1))
    assert first.status_code == 202
    other = svc.post(intent(account_id, alert_id="tv-409", size=2))
    assert other.status_code == 409
    assert "different payload" in other.json()["detail"]
    assert wait_final(svc, first.json()["intent"]["id"])["state"] == "ACCEPTED"
    assert orders_posted(intents_sim) - before == 1


def test_without_alert_id_the_payload_hash_is_the_key(start_service, account_id, intents_sim):
    svc = start_service()
    before = orders_posted(intents_sim)
    a = svc.post(intent(account_id, epic="SILVER", size=3))
    # The same alert re-sent with the number written differently is the same alert.
    b = svc.post(intent(account_id, epic="SILVER", size="3.0"))
    assert a.status_code == 202 and b.status_code == 200
    assert a.json()["intent"]["key"].startswith("sha256:")
    assert a.json()["intent"]["id"] == b.json()["intent"]["id"]
    wait_final(svc, a.json()["intent"]["id"])
    assert orders_posted(intents_sim) - before == 1


@pytest.mark.parametrize(
    "refusals", [2, pytest.param(6, marks=pytest.mark.slow)], ids=["two", "six"]
)
def test_a_429_storm_on_order_creation_doubles_nothing(
    start_service, account_id, intents_sim, refusals
):
    """Each 429 also pauses the client for a second (its shared back-off), hence two refusals
    in the default suite and six in the slow one."""
    svc = start_service()
    before = orders_posted(intents_sim)
    nth = list(range(1, refusals + 1))
    set_faults(
        intents_sim, [{"kind": "throttle", "method": "POST", "path": "^/positions$", "nth": nth}]
    )
    try:
        answer = svc.post(intent(account_id, alert_id="tv-429", epic="US500", size=1))
        assert answer.status_code == 202
        final = wait_final(svc, answer.json()["intent"]["id"])
    finally:
        clear_faults(intents_sim)
    assert final["state"] == "ACCEPTED"
    assert final["attempts"] == refusals + 1  # each refusal queued again, then the deal
    states = [s["state"] for s in final["steps"]]
    assert states.count("SUBMITTED") == refusals + 1 and states[-1] == "ACCEPTED"
    assert orders_posted(intents_sim) - before == 1


def test_dry_run_is_the_default_and_sends_nothing(start_service, account_id, intents_sim):
    svc = start_service(live=False)
    before = orders_posted(intents_sim)
    answer = svc.post(intent(account_id, alert_id="tv-dry", size=1))
    assert answer.status_code == 202
    assert answer.json()["intent"]["mode"] == "dry_run"
    final = wait_final(svc, answer.json()["intent"]["id"])
    assert final["state"] == "DRY_RUN"
    assert final["deal_reference"] is None
    assert orders_posted(intents_sim) == before


def test_an_answer_lost_after_the_deal_is_recovered_from_the_positions(
    start_service, account_id, intents_sim, intents_db
):
    """The POST times out while the simulator is still dealing: the intent goes UNKNOWN and is
    resolved from the positions once the deal shows, without a second POST."""
    from ledger_etl.intents.runner import IntentsService, Options, build
    from tests.intents.conftest import SECRET, Running

    set_faults(
        intents_sim,
        [{"kind": "latency", "seconds": 1.5, "method": "POST", "path": "^/positions$", "nth": [1]}],
    )
    before = orders_posted(intents_sim)
    with CapitalClient(
        intents_sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=200, read_timeout=0.5
    ) as impatient:
        ctx, executor = build(intents_db, impatient, Options(SECRET, live=True))
        svc = Running(IntentsService(ctx, executor).start())
        try:
            answer = svc.post(intent(account_id, alert_id="tv-lost", epic="DE40", size=1))
            final = wait_final(svc, answer.json()["intent"]["id"])
        finally:
            svc.stop()
            clear_faults(intents_sim)
    assert final["state"] == "ACCEPTED", final
    states = [s["state"] for s in final["steps"]]
    assert "UNKNOWN" in states
    assert final["reason"].startswith("recovered")
    assert final["deal_ids"]
    assert orders_posted(intents_sim) - before == 1


def test_a_dropped_answer_with_no_deal_is_rejected_and_not_sent_again(
    start_service, account_id, intents_sim
):
    svc = start_service()
    svc.service.executor.recovery_grace = timedelta(0)
    set_faults(
        intents_sim, [{"kind": "drop", "method": "POST", "path": "^/positions$", "nth": [1]}]
    )
    before = orders_posted(intents_sim)
    posts_before = sum(
        1
        for e in intents_sim.simulator.stats.log
        if e["method"] == "POST" and e["path"] == "/positions"
    )
    try:
        answer = svc.post(intent(account_id, alert_id="tv-drop", epic="EURUSD", size=1000))
        final = wait_final(svc, answer.json()["intent"]["id"])
    finally:
        clear_faults(intents_sim)
    posts = sum(
        1
        for e in intents_sim.simulator.stats.log
        if e["method"] == "POST" and e["path"] == "/positions"
    )
    assert final["state"] == "REJECTED"
    assert "not re-sent" in final["reason"]
    assert posts - posts_before == 1  # the one that was dropped; never a second
    assert orders_posted(intents_sim) == before


def test_an_intent_received_in_dry_run_is_never_sent_by_a_later_live_executor(
    start_service, account_id, intents_sim
):
    before = orders_posted(intents_sim)
    dry = start_service(live=False, executor=False)  # the webhook only: the intent stays queued
    answer = dry.post(intent(account_id, alert_id="tv-dry-then-live", size=1))
    assert answer.json()["intent"]["state"] == "VALIDATED"
    dry.stop()
    live = start_service(live=True)
    final = wait_final(live, answer.json()["intent"]["id"])
    assert final["state"] == "DRY_RUN"
    assert orders_posted(intents_sim) == before


def test_a_limit_order_then_its_cancel(start_service, broker_client, account_id, intents_sim):
    from ledger_etl.capital.trading import fetch_working_orders

    svc = start_service()
    placed = svc.post(intent(account_id, alert_id="tv-limit", epic="GOLD", size=1,
                             order_type="limit", level=1500, stop_distance=50,
                             good_till="2030-01-01T00:00:00Z"))  # fmt: skip
    assert placed.status_code == 202, placed.text
    final = wait_final(svc, placed.json()["intent"]["id"])
    assert final["state"] == "ACCEPTED"
    order_id = final["deal_ids"][0]
    with broker_client.on_account(account_id):
        orders = {o.working_order_data.deal_id for o in fetch_working_orders(broker_client).rows}
    assert order_id in orders
    cancel = svc.post(intent(account_id, alert_id="tv-cancel", epic="GOLD", action="cancel",
                             size=None, deal_id=order_id))  # fmt: skip
    done = wait_final(svc, cancel.json()["intent"]["id"])
    assert done["state"] == "ACCEPTED" and done["deal_ids"] == [order_id]
    with broker_client.on_account(account_id):
        orders = {o.working_order_data.deal_id for o in fetch_working_orders(broker_client).rows}
    assert order_id not in orders
    # Nothing left to cancel: a second cancel (another alert) is rejected with the reason.
    again = svc.post(intent(account_id, alert_id="tv-cancel-2", epic="GOLD", action="cancel",
                            size=None, deal_id=order_id))  # fmt: skip
    assert wait_final(svc, again.json()["intent"]["id"])["reason"] == "no open order to cancel"
