"""Deals happening to the world: opening and netting, amending, closing, orders filling.

Everything here runs under the deal book's lock with validated input (see simulator.dealing) and
writes through the book, so each change is one activity row, each close one TRADE transaction,
and the confirm of the request that caused it.

Execution prices: a BUY opens at the offer and a SELL at the bid; a close deals the other side
(a BUY position closes at the bid). Working orders fill at the quote of the first second the
price path crosses their level while the market is open (LIMIT: the offer at or below a BUY
level, the bid at or above a SELL level; STOP the other way round), found by the scan in
simulator.fills.
In netting mode (hedgingMode false, the default) a deal first reduces the account's opposite
positions in the same market, oldest first, and only the rest opens a new position.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger_etl.simulator.book import FOREVER, Held
from ledger_etl.simulator.catalog import instrument
from ledger_etl.simulator.events import OrderLife, PositionLife, money
from ledger_etl.simulator.fills import Pending, first_crossings
from ledger_etl.simulator.prices import epoch_second
from ledger_etl.simulator.wire import format_row_datetime

if TYPE_CHECKING:
    from ledger_etl.simulator.app import Simulator


def hedging(sim: Simulator) -> bool:
    return bool((sim.preferences or {}).get("hedgingMode", False))


def settle(sim: Simulator) -> None:
    """Fill or expire the book's working orders for the time passed since the last call."""
    book, now = sim.world.book, sim.clock.now()
    with book.lock:
        last, book.settled = book.settled, max(now, book.settled or now)
        if last is None or now <= last:
            return
        windows: list[Pending] = []
        for held in book.orders.values():
            order = held.life
            if order.ended == FOREVER:
                end = min(now, order.good_till or FOREVER)
                start = max(last, held.since)
                windows.append(Pending(order, epoch_second(start) + 1, epoch_second(end)))
        series = {w.order.epic: sim.market.series(w.order.epic) for w in windows}
        filled = first_crossings(series, windows)
        events: list[tuple[datetime, int, str, OrderLife]] = []
        for w in windows:
            order = w.order
            if order.deal_id in filled:
                at = datetime.fromtimestamp(filled[order.deal_id], UTC)
                events.append((at, 0, order.deal_id, order))
            elif order.good_till is not None and last < order.good_till <= now:
                events.append((order.good_till, 1, order.deal_id, order))
        for at, kind, _, order in sorted(events, key=lambda e: e[:3]):
            if kind == 0:
                fill(sim, order, at)
            else:
                end_order(sim, order, at, "EXPIRED", "SYSTEM")


# -- positions ----------------------------------------------------------------------------------
def own_position(sim: Simulator, p: PositionLife, at: datetime) -> PositionLife:
    """The book's live copy of an open position (a scripted one is adopted at `at`)."""
    held = sim.world.book.positions.get(p.deal_id)
    return held.life if held is not None else sim.world.book.adopt_position(p, at)  # type: ignore[no-any-return]


def own_order(sim: Simulator, o: OrderLife, at: datetime) -> OrderLife:
    held = sim.world.book.orders.get(o.deal_id)
    return held.life if held is not None else sim.world.book.adopt_order(o, at)  # type: ignore[no-any-return]


def closing_price(sim: Simulator, epic: str, direction: str, at: datetime) -> Decimal:
    bid, ask = sim.market.bid_ask(epic, at)
    return bid if direction == "BUY" else ask


def opening_price(sim: Simulator, epic: str, direction: str, at: datetime) -> Decimal:
    bid, ask = sim.market.bid_ask(epic, at)
    return ask if direction == "BUY" else bid


def realised(
    sim: Simulator, p: PositionLife, size: Decimal, price: Decimal, at: datetime
) -> Decimal:
    """P&L of closing `size` of `p` at `price`, in the account's currency, to the cent."""
    inst = instrument(p.epic)
    sign = 1 if p.direction == "BUY" else -1
    raw = (price - p.level) * size * inst.lot_size * sign
    account_ccy = sim.world.accounts[p.account].currency
    return money(raw * sim.world.fx_at(inst.currency, account_ccy, at))


def unrealised(sim: Simulator, p: PositionLife, now: datetime) -> Decimal:
    """(closing price - open level) x size x lot size, negated for SELL, in the account's
    currency at the FX mid of `now`; the closing price is the bid for BUY, the offer for SELL."""
    inst, sign = instrument(p.epic), 1 if p.direction == "BUY" else -1
    move = closing_price(sim, p.epic, p.direction, now) - p.level
    rate = sim.world.fx_at(inst.currency, sim.world.accounts[p.account].currency, now)
    return move * p.size_at(now) * inst.lot_size * sign * rate


def account_funds(sim: Simulator, index: int, now: datetime) -> tuple[Decimal, Decimal, Decimal]:
    """(balance, unrealised P&L, margin) of an account at `now`, with each market's quote and
    FX rate taken once however many positions it holds."""
    by_epic: dict[str, list[PositionLife]] = {}
    for p in sim.world.open_positions(index, now):
        by_epic.setdefault(p.epic, []).append(p)
    upl = margin = Decimal(0)
    account_ccy = sim.world.accounts[index].currency
    for epic, positions in by_epic.items():
        inst = instrument(epic)
        bid, ask = sim.market.bid_ask(epic, now)
        mid = sim.market.mid(epic, now)
        rate = sim.world.fx_at(inst.currency, account_ccy, now) * inst.lot_size
        for p in positions:
            size = p.size_at(now)
            if p.direction == "BUY":
                upl += (bid - p.level) * size * rate
            else:
                upl += (p.level - ask) * size * rate
            margin += size * mid * rate * inst.margin_factor / 100
    return sim.world.balance_at(index, now), upl, margin


def reduce(
    sim: Simulator, p: PositionLife, size: Decimal, price: Decimal, at: datetime, source: str
) -> tuple[dict[str, str], Decimal]:
    """Close `size` of book position `p` at `price`: one activity row, one TRADE transaction."""
    book = sim.world.book
    full = size >= p.size_at(at)
    size = min(size, p.size_at(at))
    pnl = realised(sim, p, size, price, at)
    if full:
        p.closed = at
    else:
        p.partial.append((at, size))
    action = "POSITION_CLOSED" if full else "POSITION_PARTIALLY_CLOSED"
    book.add_activity(
        at, p, source, "POSITION", "ACCEPTED", size=size, level=price,
        actions=[{"actionType": action, "affectedDealId": p.deal_id}],
    )  # fmt: skip
    book.add_trade(at, p, pnl)
    deal = {"dealId": p.deal_id, "status": "FULLY_CLOSED" if full else "PARTIALLY_CLOSED"}
    currency = sim.world.accounts[p.account].currency
    status = "CLOSED" if full else "PARTIALLY_CLOSED"
    _position_confirm(sim, p, at, status, deal, price, size, profit=pnl, profitCurrency=currency)
    return deal, pnl


def execute(
    sim: Simulator, account: int, epic: str, direction: str, size: Decimal, price: Decimal,
    at: datetime, *, source: str, order_id: str, from_order: bool = False,
    stops: dict[str, Any] | None = None,
) -> tuple[list[dict[str, str]], Decimal]:  # fmt: skip
    """A deal of `size` at `price`: nets against opposite positions first unless hedging, then
    opens a position with the rest. Returns the affected deals and the realised P&L."""
    book, stops = sim.world.book, stops or {}
    affected: list[dict[str, str]] = []
    profit, remaining = Decimal(0), size
    if not hedging(sim):
        for p in sim.world.open_positions(account, at):
            if remaining <= 0:
                break
            if p.epic != epic or p.direction == direction:
                continue
            life = own_position(sim, p, at)
            taken = min(remaining, life.size_at(at))
            deal, pnl = reduce(sim, life, taken, price, at, source)
            affected.append(deal)
            profit += pnl
            remaining -= taken
    if remaining > 0:
        deal_id = book.next_deal_id(account, at)
        life = PositionLife(
            account, deal_id, f"p_{deal_id}", epic, direction, remaining, price, at, FOREVER,
            working_order_id=order_id, guaranteed_stop=bool(stops.get("guaranteedStop")),
            stop_level=stops.get("stopLevel"), profit_level=stops.get("profitLevel"),
            trailing_stop=bool(stops.get("trailingStop")),
        )  # fmt: skip
        book.positions[deal_id] = Held(at, life)
        book.add_activity(
            at, life, source, "POSITION", "ACCEPTED",
            workingOrderId=order_id if from_order else None,
            stopLevel=life.stop_level, profitLevel=life.profit_level,
            actions=[{"actionType": "POSITION_OPENED", "affectedDealId": deal_id}],
        )  # fmt: skip
        opened = {"dealId": deal_id, "status": "OPENED"}
        _position_confirm(sim, life, at, "OPEN", opened, price, remaining)
        affected.append(opened)
    return affected, profit


def _position_confirm(
    sim: Simulator, p: PositionLife, at: datetime, status: str, deal: dict[str, str],
    level: Decimal, size: Decimal, **extra: Any,
) -> None:  # fmt: skip
    """What `GET /confirms/p_<dealId>` answers after an operation on the position."""
    stops = {"stopLevel": p.stop_level, "profitLevel": p.profit_level}
    confirm(
        sim, p.account, f"p_{p.deal_id}", at, status=status, reason="SUCCESS",
        dealStatus="ACCEPTED", epic=p.epic, dealId=p.deal_id, affectedDeals=[deal], level=level,
        size=size, direction=p.direction, guaranteedStop=p.guaranteed_stop,
        trailingStop=p.trailing_stop, **{k: v for k, v in stops.items() if v is not None},
        **extra,
    )  # fmt: skip


def deal_status(affected: list[dict[str, str]]) -> str:
    """The confirm's `status` for a set of affected deals."""
    kinds = {a["status"] for a in affected}
    if "OPENED" in kinds:
        return "OPEN"
    return "CLOSED" if kinds == {"FULLY_CLOSED"} else "PARTIALLY_CLOSED"


# -- working orders -----------------------------------------------------------------------------
def fill(sim: Simulator, order: OrderLife, at: datetime) -> None:
    price = opening_price(sim, order.epic, order.direction, at)
    order.ended, order.outcome = at, "EXECUTED"
    sim.world.book.add_activity(at, order, "SYSTEM", "WORKING_ORDER", "EXECUTED", level=price)
    sign = Decimal(1) if order.direction == "BUY" else Decimal(-1)
    stops: dict[str, Any] = {"guaranteedStop": order.guaranteed_stop,
                             "trailingStop": order.trailing_stop}  # fmt: skip
    if order.stop_distance is not None:
        stops["stopLevel"] = price - sign * order.stop_distance
    if order.profit_distance is not None:
        stops["profitLevel"] = price + sign * order.profit_distance
    execute(
        sim, order.account, order.epic, order.direction, order.size, price, at,
        source="SYSTEM", order_id=order.deal_id, from_order=True, stops=stops,
    )  # fmt: skip


def end_order(sim: Simulator, order: OrderLife, at: datetime, outcome: str, source: str) -> None:
    order.ended, order.outcome = at, outcome
    sim.world.book.add_activity(at, order, source, "WORKING_ORDER", outcome, **order_details(order))


def order_details(order: OrderLife) -> dict[str, Any]:
    return {
        "goodTillDate": order.good_till.strftime("%Y-%m-%dT%H:%M:%S") if order.good_till else None,
        "stopDistance": order.stop_distance,
        "profitDistance": order.profit_distance,
        "orderType": order.order_type,
    }


def confirm(
    sim: Simulator, account: int, reference: str, at: datetime, **body: Any
) -> dict[str, Any]:
    """Record the confirm of `reference` (the latest operation wins for a `p_` reference)."""
    out: dict[str, Any] = {"date": format_row_datetime(at)}
    out.update({k: (float(v) if isinstance(v, Decimal) else v) for k, v in body.items()})
    out["dealReference"] = reference
    sim.world.book.confirms[reference] = {"account": account, "body": out}
    return out


def vanish(sim: Simulator, account: int, deal_id: str, at: datetime) -> str | None:
    """Take an open deal out of the world without a trace; "position", "order" or None."""
    book = sim.world.book
    with book.lock:
        for p in sim.world.open_positions(account, at):
            if p.deal_id == deal_id:
                own_position(sim, p, at).closed = at
                return "position"
        for o in sim.world.open_orders(account, at):
            if o.deal_id == deal_id:
                order = own_order(sim, o, at)
                order.ended, order.outcome = at, "VANISHED"
                return "order"
    return None
