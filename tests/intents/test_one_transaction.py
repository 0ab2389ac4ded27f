"""The acknowledgement path when the market's rules are cached (one transaction, no request to
the broker), and the executor's view of the account's deals between two reads."""

from __future__ import annotations

import threading
from decimal import Decimal

import httpx
from sqlalchemy import select

from ledger_etl.capital.trading_models import parse_confirm
from ledger_etl.intents.broker import Deal
from ledger_etl.intents.dealsview import DealsView
from ledger_etl.ledger.schema import trading_changelog
from tests.intents.conftest import intent, orders_posted, wait_final


def _deliver_at_once(url: str, bodies: list[dict]) -> list[httpx.Response]:
    answers: list[httpx.Response] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(bodies))

    def deliver(body: dict) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            barrier.wait()
            response = http.post("/intents", json=body)
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=deliver, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def _market_reads(sim) -> int:
    stats = sim.simulator.stats
    with stats.lock:
        return sum(n for path, n in stats.by_path.items() if path.startswith("/markets/"))


def test_a_cached_market_is_judged_and_stored_in_one_step_with_both_changes_logged(
    start_service, account_id, intents_sim, intents_db
):
    svc = start_service(live=False)
    warm = svc.post(intent(account_id, alert_id="warm-1", epic="GOLD", size=1))
    assert warm.status_code == 202
    # The executor reads the markets of the account's open deals too: let it finish first.
    assert wait_final(svc, warm.json()["intent"]["id"])["state"] == "DRY_RUN"
    reads_before = _market_reads(intents_sim)
    answer = svc.post(intent(account_id, alert_id="cached-1", epic="GOLD", size=1))
    assert answer.status_code == 202
    view = answer.json()["intent"]
    assert [s["state"] for s in view["steps"]] == ["RECEIVED", "VALIDATED"]
    bad = svc.post(intent(account_id, alert_id="cached-2", epic="GOLD", size="0.05"))
    assert bad.status_code == 422
    assert [s["state"] for s in bad.json()["intent"]["steps"]] == ["RECEIVED", "REJECTED"]
    assert _market_reads(intents_sim) == reads_before  # the rules came from the cache
    c = trading_changelog.c
    with intents_db.connect() as conn:
        logged = conn.execute(
            select(c.from_state, c.to_state)
            .where(c.deal_id.in_([f"intent:{view['id']}", f"intent:{bad.json()['intent']['id']}"]))
            .where(c.to_state.in_(["RECEIVED", "VALIDATED", "REJECTED"]))  # not the executor's
            .order_by(c.seq)
        ).all()
    assert [tuple(r) for r in logged] == [
        (None, "RECEIVED"),
        ("RECEIVED", "VALIDATED"),
        (None, "RECEIVED"),
        ("RECEIVED", "REJECTED"),
    ]
    assert wait_final(svc, view["id"])["state"] == "DRY_RUN"


def test_concurrent_repeats_on_the_cached_path_make_one_order_and_a_conflict(
    start_service, account_id, intents_sim
):
    svc = start_service()
    assert svc.post(intent(account_id, alert_id="warm-2", epic="GOLD", size=1)).status_code == 202
    before = orders_posted(intents_sim)
    same = intent(account_id, alert_id="tv-fast", epic="GOLD", size=1)
    other = intent(account_id, alert_id="tv-fast", epic="GOLD", size=2)
    answers = _deliver_at_once(svc.service.url, [same] * 5 + [other])
    codes = sorted(a.status_code for a in answers)
    assert codes.count(202) == 1 and all(c in (200, 202, 409) for c in codes)
    ids = {a.json()["intent"]["id"] for a in answers}
    assert len(ids) == 1
    final = wait_final(svc, ids.pop())
    # Whichever payload was stored first, the other one's deliveries are conflicts.
    if final["order"]["size"] == "1":
        assert codes == [200, 200, 200, 200, 202, 409]
    else:
        assert codes == [202, 409, 409, 409, 409, 409]
    assert final["state"] == "ACCEPTED"
    assert orders_posted(intents_sim) - before == 2  # the warm-up's order and this one


def _confirm(**fields: object) -> object:
    body = {"dealStatus": "ACCEPTED", "dealReference": "o_1", "epic": "GOLD", "dealId": "ord-1",
            "direction": "BUY", "size": Decimal(1), "level": Decimal("2000.5"),
            "affectedDeals": [{"dealId": "pos-1", "status": "OPENED"}]}  # fmt: skip
    body.update(fields)
    return parse_confirm(body)


def test_the_deals_view_adds_what_was_opened_and_drops_what_it_cannot_model():
    now = [100.0]
    view = DealsView(max_age_s=1.0, monotonic=lambda: now[0])
    other = Deal("pos-0", "position", "US500", "SELL", Decimal(2), Decimal(5000))
    view.put(("acc", False), [other])
    view.put(("acc", True), [other])
    market = {"epic": "GOLD", "direction": "BUY", "size": "1", "order_type": "MARKET"}
    view.dealt("acc", market, _confirm())
    opened = Deal("pos-1", "position", "GOLD", "BUY", Decimal(1), Decimal("2000.5"), None, "ord-1")
    assert view.get(("acc", False)) == [other, opened]
    assert view.get(("acc", True)) == [other, opened]
    view.dealt("acc", market, _confirm(dealStatus="REJECTED", affectedDeals=[]))
    assert view.get(("acc", False)) == [other, opened]  # a rejection changed nothing
    limit = {**market, "order_type": "LIMIT"}
    view.dealt("acc", limit, _confirm(dealId="ord-2", affectedDeals=[]))
    assert view.get(("acc", False)) == [other, opened]  # orders are not in this view
    assert view.get(("acc", True))[-1].kind == "order"
    netted = _confirm(affectedDeals=[{"dealId": "pos-0", "status": "PARTIALLY_CLOSED"}])
    view.dealt("acc", market, netted)
    assert view.get(("acc", False)) is None and view.get(("acc", True)) is None
    view.put(("acc", False), [other])
    now[0] += 1.0
    assert view.get(("acc", False)) is None  # older than a second: read the broker again


def _gold_reads(sim) -> int:
    with sim.simulator.stats.lock:
        return sim.simulator.stats.by_path.get("/markets/GOLD", 0)


def _wait_for_gold(sim, above: int, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while _gold_reads(sim) <= above:
        assert time.monotonic() < deadline, f"/markets/GOLD was not read within {timeout} s"
        time.sleep(0.05)


def test_a_started_service_reads_its_markets_before_the_first_webhook(
    start_service, account_id, intents_sim
):
    # The allowed epics are read at start: the first webhook is judged from the cache.
    gold = _gold_reads(intents_sim)
    svc = start_service(live=False, allowed_epics=frozenset({"GOLD"}))
    _wait_for_gold(intents_sim, gold)
    warmed = _market_reads(intents_sim)
    first = svc.post(intent(account_id, alert_id="first-after-start", epic="GOLD", size=1))
    assert first.status_code == 202
    assert [s["state"] for s in first.json()["intent"]["steps"]] == ["RECEIVED", "VALIDATED"]
    assert _market_reads(intents_sim) == warmed
    assert wait_final(svc, first.json()["intent"]["id"])["state"] == "DRY_RUN"
    svc.stop()
    # A restart without an allow-list reads the markets of the last week's intents.
    gold = _gold_reads(intents_sim)
    again = start_service(live=False)
    _wait_for_gold(intents_sim, gold)
    second = again.post(intent(account_id, alert_id="first-after-restart", epic="GOLD", size=1))
    assert second.status_code == 202
    assert [s["state"] for s in second.json()["intent"]["steps"]] == ["RECEIVED", "VALIDATED"]
