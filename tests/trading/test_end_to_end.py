"""End to end over HTTP on both backends, polling every simulated minute: our own deals go
through the simulator's dealing endpoints, and each lifecycle, as stored and logged, equals the
expected sequence. A deal removed behind the client's back is flagged as vanished; the change
log verifies, and editing any one entry is detected."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx
from sqlalchemy import delete, select, update

from ledger_etl.capital.trading import (
    amend_position,
    close_position,
    create_working_order,
    delete_working_order,
    fetch_confirm,
    open_position,
)
from ledger_etl.ledger.schema import trading_changelog
from ledger_etl.simulator.fills import SCAN_SECONDS
from ledger_etl.sync import sync_range
from ledger_etl.trading import changelog
from ledger_etl.trading.lifecycle import ORDER, POSITION
from ledger_etl.trading.poll import poll_account
from ledger_etl.trading.query_lifecycle import lifecycle_report
from ledger_etl.trading.requests import record_confirm, record_submission
from ledger_etl.trading.ties import ties_out
from tests.trading.conftest import account_ids, advance

CANDIDATES = (
    "GOLD",
    "SILVER",
    "EURUSD",
    "GBPUSD",
    "US500",
    "BTCUSD",
    "USDJPY",
    "NATURALGAS",
    "OIL_CRUDE",
    "DE40",
)
GRACE = timedelta(minutes=3)


def _free_epics(sim, now) -> list[str]:
    """Epics the account holds nothing in over the test (netting would mix our deals in)."""
    world = sim.world
    busy = set()
    for minute in range(0, 40, 5):
        at = now + timedelta(minutes=minute)
        busy |= {p.epic for p in world.open_positions(0, at)}
        busy |= {o.epic for o in world.open_orders(0, at)}
    return [e for e in CANDIDATES if e not in busy and sim.market.is_open(e, now)]


def _fill_level(sim, epic, now, minutes=10):
    """A BUY LIMIT level the ask reaches within `minutes` but is not at now. The ask stays at
    or below it for a whole scan step (`fills.SCAN_SECONDS`): the simulator samples the path
    on that grid, and a dip shorter than a step may go unseen (simulator/fills.py)."""
    series = sim.market.series(epic)
    start = int(now.timestamp())
    asks = [
        series.ask_ticks(series.raw_mid_ticks(s)) for s in range(start + 5, start + minutes * 60)
    ]
    level = min(max(asks[i : i + SCAN_SECONDS + 1]) for i in range(len(asks) - SCAN_SECONDS))
    current = series.ask_ticks(series.raw_mid_ticks(start))
    if level >= current:
        return None
    return series.to_decimal(level)


class Desk:
    """Deals through the client, recorded as submissions and confirms."""

    def __init__(self, client, engine, account, server):
        self.client, self.engine, self.account, self.server = client, engine, account, server

    def now(self):
        return self.server.simulator.clock.now()

    def submit(self, kind, call, **fields):
        advance(self.server, 1)  # the broker spaces order creation (0.1 s)
        with self.client.on_account(self.account):
            reference = call(self.client, **fields)
            record_submission(self.engine, self.account, reference, kind, fields, self.now())
            confirm = fetch_confirm(self.client, reference)
        touched = record_confirm(self.engine, self.account, confirm, kind, self.now())
        return reference, confirm, touched

    def act(self, kind, call, deal_id, **fields):
        with self.client.on_account(self.account):
            reference = call(self.client, deal_id, **fields)
            confirm = fetch_confirm(self.client, reference)
        record_confirm(self.engine, self.account, confirm, kind, self.now())
        return confirm

    def poll(self, minutes=1):
        for _ in range(minutes):
            advance(self.server, 60)
            result = poll_account(self.client, self.engine, self.account, grace=GRACE)
            assert result.status == "complete", result.error


def _sequence(engine, account, deal_id, reference):
    with engine.connect() as conn:
        entries = changelog.entries_for(conn, account, [deal_id, reference])
    return [e.to_state for e in entries if e.flag != "invalid_transition"]


def test_deals_follow_their_lifecycles_end_to_end(ledger_engine, frozen_sim, sim_client):
    sim = frozen_sim.simulator
    account = account_ids(sim_client)[0]
    desk = Desk(sim_client, ledger_engine, account, frozen_sim)
    poll_account(sim_client, ledger_engine, account, grace=GRACE)
    free = _free_epics(sim, desk.now())
    assert len(free) >= 4, free
    fill_epic = next(e for e in free if _fill_level(sim, e, desk.now()) is not None)
    free.remove(fill_epic)
    pos_epic, stop_epic, gone_epic = free[:3]
    inst = {e: sim.market.series(e) for e in free}
    del inst

    # 1. a limit order that fills
    level = _fill_level(sim, fill_epic, desk.now())
    size = _min_size(fill_epic)
    fill_ref, fill_confirm, (fill_id,) = desk.submit(
        ORDER,
        create_working_order,
        epic=fill_epic,
        direction="BUY",
        size=size,
        level=level,
        type="LIMIT",
    )
    # 2. a stop order, cancelled later; 3. an order that expires
    bid, ask = sim.market.bid_ask(stop_epic, desk.now())
    stop_ref, _, (stop_id,) = desk.submit(
        ORDER,
        create_working_order,
        epic=stop_epic,
        direction="BUY",
        size=_min_size(stop_epic),
        level=(ask * Decimal("1.2")).quantize(ask),
        type="STOP",
    )
    good_till = (desk.now() + timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%S")
    exp_ref, _, (exp_id,) = desk.submit(
        ORDER,
        create_working_order,
        epic=stop_epic,
        direction="SELL",
        size=_min_size(stop_epic),
        level=(bid * Decimal("1.2")).quantize(bid),
        type="LIMIT",
        goodTillDate=good_till,
    )
    # 4. a market position, partially closed twice, amended, then closed
    pos_size = _min_size(pos_epic) * 10
    pos_ref, _, (pos_id,) = desk.submit(
        POSITION, open_position, epic=pos_epic, direction="BUY", size=pos_size
    )
    # 5. a rejected order (below the minimum size)
    rej_ref, rej_confirm, _ = desk.submit(
        POSITION, open_position, epic=pos_epic, direction="BUY", size=_min_size(pos_epic) / 10
    )
    assert rej_confirm.deal_status == "REJECTED"
    # 6. a position that will vanish behind our back
    gone_ref, _, (gone_id,) = desk.submit(
        POSITION, open_position, epic=gone_epic, direction="BUY", size=_min_size(gone_epic)
    )
    desk.poll(2)
    for part in (3, 3):
        advance(frozen_sim, 1)
        with sim_client.on_account(account):
            open_position(
                sim_client, epic=pos_epic, direction="SELL", size=_min_size(pos_epic) * part
            )
        desk.poll(1)
    bid, _ = sim.market.bid_ask(pos_epic, desk.now())
    desk.act(POSITION, amend_position, pos_id, stopLevel=(bid * Decimal("0.9")).quantize(bid))
    desk.poll(1)
    desk.act(ORDER, delete_working_order, stop_id)
    # removed behind the client's back (the operator route): no activity, no confirm
    removed = httpx.delete(f"{frozen_sim.url}/_sim/deals/{gone_id}", params={"account": account})
    assert removed.status_code == 200, removed.text
    desk.poll(2)
    desk.act(POSITION, close_position, pos_id)
    desk.poll(12)

    seq = {
        name: _sequence(ledger_engine, account, deal, ref)
        for name, deal, ref in (
            ("fill", fill_id, fill_ref),
            ("stop", stop_id, stop_ref),
            ("expire", exp_id, exp_ref),
            ("position", pos_id, pos_ref),
            ("rejected", rej_ref, rej_ref),
            ("gone", gone_id, gone_ref),
        )
    }
    assert seq == {
        "fill": ["PENDING", "ACCEPTED", "FILLED"],
        "stop": ["PENDING", "ACCEPTED", "CANCELLED"],
        "expire": ["PENDING", "ACCEPTED", "EXPIRED"],
        "position": [
            "PENDING",
            "OPEN",
            "PARTIALLY_CLOSED",
            "PARTIALLY_CLOSED",
            "AMENDED",
            "CLOSED",
        ],
        "rejected": ["PENDING", "REJECTED"],
        "gone": ["PENDING", "OPEN", "VANISHED"],
    }
    assert fill_confirm.level == level
    with ledger_engine.connect() as conn:
        entries = changelog.entries_for(conn, account, [gone_id])
        checked, problems = changelog.verify(conn)
    assert entries[-1].flag == "vanished" and problems == [] and checked > 10
    # Editing any one entry is detected, and only that one.
    c = trading_changelog.c
    with ledger_engine.connect() as conn:
        seqs = [r.seq for r in conn.execute(select(c.seq).where(c.account_id == account))]
    for number in seqs[:: max(1, len(seqs) // 8)]:
        with ledger_engine.begin() as conn:
            detail = conn.execute(
                select(c.detail).where(c.account_id == account, c.seq == number)
            ).scalar_one()
            conn.execute(
                update(trading_changelog)
                .where(c.account_id == account, c.seq == number)
                .values(detail={**detail, "size": "999"})
            )
        with ledger_engine.connect() as conn:
            found = changelog.verify(conn)[1]
        assert [p.seq for p in found] == [number]
        with ledger_engine.begin() as conn:
            conn.execute(
                update(trading_changelog)
                .where(c.account_id == account, c.seq == number)
                .values(detail=detail)
            )
    # The ledger's TRADE transactions of the closed positions tie out; for our own close, the
    # confirm's profit equals the ledger's TRADE amount.
    day = desk.now().replace(hour=0, minute=0, second=0, microsecond=0)
    sync_range(sim_client, ledger_engine, day, desk.now().replace(microsecond=0), [account])
    with ledger_engine.connect() as conn:
        tied, untied = ties_out(conn, account, desk.now() + timedelta(days=1))
    assert tied >= 1 and untied == [], untied  # ours, and any of the world's that closed
    story = lifecycle_report(ledger_engine, account, pos_id)
    assert story["executed"]["closes"][-1]["realised"]  # compared with the ledger above
    assert [t["source"] for t in story["transitions"]][:2] == ["submission", "confirm"]
    # Removing the newest entry leaves a valid chain, but not the head the last poll recorded.
    problems = _drop_newest(ledger_engine, account)
    assert len(problems) == 1 and "removed" in problems[0].reason


def _min_size(epic):
    from ledger_etl.simulator.catalog import instrument

    return instrument(epic).min_deal_size


def _drop_newest(engine, account):
    c = trading_changelog.c
    with engine.begin() as conn:
        newest = conn.execute(
            select(c.seq).where(c.account_id == account).order_by(c.seq.desc()).limit(1)
        ).scalar_one()
        conn.execute(delete(trading_changelog).where(c.account_id == account, c.seq == newest))
    with engine.connect() as conn:
        return changelog.verify(conn)[1]
