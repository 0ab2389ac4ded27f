"""POST/PUT/DELETE `/positions` and `/workingorders`: requests become deals in the world.

The rules and their error codes are in simulator.rules; what a deal does to the world is in
simulator.execution. A create answers `{"dealReference": "o_<uuid>"}` even when the deal is
rejected (minimum size, market closed): the outcome is in `GET /confirms/{dealReference}`, as on
the live API. Position operations answer `p_<dealId>`; working-order amendments and cancellations
answer a fresh `o_` reference each.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger_etl.simulator import rules
from ledger_etl.simulator.book import FOREVER, Held
from ledger_etl.simulator.catalog import Instrument, instrument
from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.events import OrderLife, PositionLife
from ledger_etl.simulator.execution import (
    account_funds,
    closing_price,
    confirm,
    deal_status,
    end_order,
    execute,
    hedging,
    opening_price,
    order_details,
    own_order,
    own_position,
    reduce,
    settle,
)

if TYPE_CHECKING:
    from ledger_etl.simulator.app import Handler, Reply, Request, Simulator

HOUR = 3600.0
SPACING_TOLERANCE = 1e-4


def _reply(body: Any) -> Reply:
    from ledger_etl.simulator.app import Reply

    return Reply(200, body)


def _begin(sim: Simulator, request: Request) -> tuple[int, datetime]:
    """Authenticate, bring the book up to now; (account index, now)."""
    request.session = sim.sessions.authenticate(
        request.headers.get("cst"), request.headers.get("x-security-token")
    )
    settle(sim)
    spec = sim.world.account(request.session.account_id)
    assert spec is not None
    return spec.index, sim.clock.now()


def _admit(sim: Simulator) -> None:
    """Order creation: one per `order_spacing_seconds`, and on demo `orders_per_hour` an hour;
    an excess request is refused and does not count."""
    now, times = sim.clock.timestamp(), sim.world.book.created_at
    cap = sim.config.orders_per_hour if sim.config.world.demo else None
    while times and times[-1] >= now:  # the operator set the clock back: forget its future
        times.pop()
    while times and now - times[0] >= HOUR:
        times.popleft()
    # A client that waits exactly the spacing passes: the tolerance absorbs float rounding of
    # epoch seconds (about 2e-7 s today).
    if times and now - times[-1] < sim.config.order_spacing_seconds - SPACING_TOLERANCE:
        raise ApiError(429, "error.too-many.requests")
    if cap is not None and len(times) >= cap:
        raise ApiError(429, "error.too-many.requests")
    times.append(now)


def _per_unit_fx(sim: Simulator, index: int, inst: Instrument, now: datetime) -> Decimal:
    account_ccy = sim.world.accounts[index].currency
    return inst.lot_size * sim.world.fx_at(inst.currency, account_ccy, now)


def _reject(
    sim: Simulator, index: int, now: datetime, act_type: str, life: Any, reason: str
) -> Reply:
    book = sim.world.book
    book.add_activity(now, life, "USER", act_type, "REJECTED")
    confirm(
        sim, index, life.deal_reference, now, status=None, reason=reason, rejectReason=reason,
        dealStatus="REJECTED", epic=life.epic, dealId=life.deal_id, affectedDeals=[],
        level=life.level, size=life.size, direction=life.direction,
        guaranteedStop=False, trailingStop=False,
    )  # fmt: skip
    return _reply({"dealReference": life.deal_reference})


# -- positions ----------------------------------------------------------------------------------
def post_position(sim: Simulator, request: Request) -> Reply:
    index, now = _begin(sim, request)
    with sim.world.book.lock:
        _admit(sim)
        body = request.json()
        inst = rules.epic(body)
        side = rules.direction(body)
        size, too_small = rules.size(body, inst)
        price = opening_price(sim, inst.epic, side, now)
        fx = _per_unit_fx(sim, index, inst, now)
        guard = rules.protection(body, inst, side, price, size, fx, hedging=hedging(sim))
        book = sim.world.book
        order_id, reference = book.next_deal_id(index, now), book.next_order_reference()
        attempt = PositionLife(index, order_id, reference, inst.epic, side, size, price, now, now)
        if too_small:
            return _reject(sim, index, now, "POSITION", attempt, "MINIMUM_ORDER_SIZE_ERROR")
        if not sim.market.is_open(inst.epic, now):
            return _reject(sim, index, now, "POSITION", attempt, "MARKET_CLOSED")
        _check_margin(sim, index, inst, side, size, now)
        affected, profit = execute(
            sim, index, inst.epic, side, size, price, now, source="USER", order_id=order_id,
            stops=guard.as_stops(),
        )  # fmt: skip
        extra: dict[str, Any] = {}
        if any(a["status"] != "OPENED" for a in affected):
            extra = {"profit": profit, "profitCurrency": sim.world.accounts[index].currency}
        if guard.stop_level is not None:
            extra["stopLevel"] = guard.stop_level
        if guard.profit_level is not None:
            extra["profitLevel"] = guard.profit_level
        confirm(
            sim, index, reference, now, status=deal_status(affected), reason="SUCCESS",
            dealStatus="ACCEPTED", epic=inst.epic, dealId=order_id, affectedDeals=affected,
            level=price, size=size, direction=side, guaranteedStop=guard.guaranteed_stop,
            trailingStop=guard.trailing_stop, **extra,
        )  # fmt: skip
    return _reply({"dealReference": reference})


def _check_margin(
    sim: Simulator, index: int, inst: Instrument, side: str, size: Decimal, now: datetime
) -> None:
    positions = sim.world.open_positions(index, now)
    opening = size
    if not hedging(sim):
        opposite = sum(
            (p.size_at(now) for p in positions if p.epic == inst.epic and p.direction != side),
            Decimal(0),
        )
        opening = max(Decimal(0), size - opposite)
    needed = opening * sim.market.mid(inst.epic, now) * _per_unit_fx(sim, index, inst, now)
    needed = needed * inst.margin_factor / 100
    balance, upl, margin = account_funds(sim, index, now)
    if needed > balance + upl - margin:
        raise ApiError(400, "error.validation.margin")


def _find_position(sim: Simulator, request: Request, index: int, now: datetime) -> PositionLife:
    """The open position the path names, not yet taken over from the script: a request that is
    refused must leave the scripted future as it was."""
    deal_id = request.params["_path_dealId"]
    found = next((p for p in sim.world.open_positions(index, now) if p.deal_id == deal_id), None)
    if found is None:
        raise ApiError(404, "error.not-found.dealId")
    return found


def put_position(sim: Simulator, request: Request) -> Reply:
    index, now = _begin(sim, request)
    with sim.world.book.lock:
        body = request.json()
        if "size" in body:
            raise ApiError(400, "error.invalid.size")
        current = _find_position(sim, request, index, now)
        inst = instrument(current.epic)
        stop, profit = current.stops_at(now)
        before = rules.Protection(stop, profit, current.guaranteed_stop, current.trailing_stop)
        guard = rules.protection(
            body, inst, current.direction, closing_price(sim, inst.epic, current.direction, now),
            current.size_at(now), _per_unit_fx(sim, index, inst, now), hedging=hedging(sim),
            current=before,
        )  # fmt: skip
        life = own_position(sim, current, now)
        life.amend(now, guard.stop_level, guard.profit_level)
        life.guaranteed_stop, life.trailing_stop = guard.guaranteed_stop, guard.trailing_stop
        sim.world.book.add_activity(
            now, life, "USER", "EDIT_STOP_AND_LIMIT", "MODIFIED", size=life.size_at(now),
            stopLevel=life.stop_level, profitLevel=life.profit_level,
            trailingStop=life.trailing_stop,
        )  # fmt: skip
        confirm(
            sim, index, f"p_{life.deal_id}", now, status="AMENDED", reason="SUCCESS",
            dealStatus="ACCEPTED", epic=life.epic, dealId=life.deal_id,
            affectedDeals=[{"dealId": life.deal_id, "status": "AMENDED"}], level=life.level,
            size=life.size_at(now), direction=life.direction,
            guaranteedStop=life.guaranteed_stop, trailingStop=life.trailing_stop,
            **_set({"stopLevel": life.stop_level, "profitLevel": life.profit_level}),
        )  # fmt: skip
    return _reply({"dealReference": f"p_{life.deal_id}"})


def delete_position(sim: Simulator, request: Request) -> Reply:
    """A full close (a `size` parameter is ignored, as on the live API)."""
    index, now = _begin(sim, request)
    with sim.world.book.lock:
        life = _find_position(sim, request, index, now)
        reference = f"p_{life.deal_id}"
        size = life.size_at(now)
        if not sim.market.is_open(life.epic, now):
            sim.world.book.add_activity(now, life, "USER", "POSITION", "REJECTED", size=size)
            confirm(
                sim, index, reference, now, status=None, reason="MARKET_CLOSED",
                rejectReason="MARKET_CLOSED", dealStatus="REJECTED", epic=life.epic,
                dealId=life.deal_id, affectedDeals=[], level=life.level, size=size,
                direction=life.direction, guaranteedStop=life.guaranteed_stop,
                trailingStop=life.trailing_stop,
            )  # fmt: skip
            return _reply({"dealReference": reference})
        life = own_position(sim, life, now)
        price = closing_price(sim, life.epic, life.direction, now)
        deal, profit = reduce(sim, life, size, price, now, "USER")
        confirm(
            sim, index, reference, now, status="CLOSED", reason="SUCCESS", dealStatus="ACCEPTED",
            epic=life.epic, dealId=life.deal_id, affectedDeals=[deal], level=price, size=size,
            direction="SELL" if life.direction == "BUY" else "BUY",
            guaranteedStop=life.guaranteed_stop, trailingStop=life.trailing_stop,
            profit=profit, profitCurrency=sim.world.accounts[index].currency,
        )  # fmt: skip
    return _reply({"dealReference": reference})


def _set(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# -- working orders -----------------------------------------------------------------------------
def post_working_order(sim: Simulator, request: Request) -> Reply:
    index, now = _begin(sim, request)
    with sim.world.book.lock:
        _admit(sim)
        body = request.json()
        inst = rules.epic(body)
        side = rules.direction(body)
        size, too_small = rules.size(body, inst)
        order_type = body.get("type")
        if order_type not in ("LIMIT", "STOP"):
            raise ApiError(400, "error.invalid.type")
        bid, ask = sim.market.bid_ask(inst.epic, now)
        level = rules.order_level(body, side, order_type, bid, ask)
        good_till = rules.good_till(body, now)
        fx = _per_unit_fx(sim, index, inst, now)
        guard = rules.protection(body, inst, side, level, size, fx, hedging=hedging(sim))
        stop_distance, profit_distance = guard.distances(level)
        book = sim.world.book
        deal_id, reference = book.next_deal_id(index, now), book.next_order_reference()
        order = OrderLife(
            index, deal_id, reference, inst.epic, side, size, level, order_type, now, FOREVER,
            "WORKING", good_till, stop_distance, profit_distance,
            guaranteed_stop=guard.guaranteed_stop, trailing_stop=guard.trailing_stop,
        )  # fmt: skip
        if too_small or not sim.market.is_open(inst.epic, now):
            reason = "MINIMUM_ORDER_SIZE_ERROR" if too_small else "MARKET_CLOSED"
            return _reject(sim, index, now, "WORKING_ORDER", order, reason)
        book.orders[deal_id] = Held(now, order)
        book.add_activity(now, order, "USER", "WORKING_ORDER", "CREATED", **order_details(order))
        _order_confirm(sim, index, reference, order, now, "OPEN", "OPENED")
    return _reply({"dealReference": reference})


def _order_confirm(
    sim: Simulator, index: int, reference: str, order: OrderLife, now: datetime, status: str,
    affected: str,
) -> None:  # fmt: skip
    confirm(
        sim, index, reference, now, status=status, reason="SUCCESS", dealStatus="ACCEPTED",
        epic=order.epic, dealId=order.deal_id,
        affectedDeals=[{"dealId": order.deal_id, "status": affected}], level=order.level,
        size=order.size, direction=order.direction, guaranteedStop=order.guaranteed_stop,
        trailingStop=order.trailing_stop,
    )  # fmt: skip


def _working_order(sim: Simulator, request: Request, index: int, now: datetime) -> OrderLife:
    deal_id = request.params["_path_dealId"]
    for o in sim.world.open_orders(index, now):
        if o.deal_id == deal_id:
            return own_order(sim, o, now)
    raise ApiError(404, "error.not-found.dealId")


def put_working_order(sim: Simulator, request: Request) -> Reply:
    index, now = _begin(sim, request)
    with sim.world.book.lock:
        body = request.json()
        if "size" in body:
            raise ApiError(400, "error.invalid.size")
        deal_id = request.params["_path_dealId"]
        current = next((o for o in sim.world.open_orders(index, now) if o.deal_id == deal_id), None)
        if current is None:
            raise ApiError(404, "error.not-found.dealId")
        inst = instrument(current.epic)
        bid, ask = sim.market.bid_ask(inst.epic, now)
        level = current.level
        if "level" in body:
            level = rules.order_level(body, current.direction, current.order_type, bid, ask)
        good_till = rules.good_till(body, now) if "goodTillDate" in body else current.good_till
        sign = Decimal(1) if current.direction == "BUY" else Decimal(-1)
        before = rules.Protection(
            None if current.stop_distance is None else level - sign * current.stop_distance,
            None if current.profit_distance is None else level + sign * current.profit_distance,
            current.guaranteed_stop, current.trailing_stop,
        )  # fmt: skip
        guard = rules.protection(
            body, inst, current.direction, level, current.size,
            _per_unit_fx(sim, index, inst, now), hedging=hedging(sim), current=before,
        )  # fmt: skip
        order = _working_order(sim, request, index, now)
        order.level, order.good_till = level, good_till
        order.stop_distance, order.profit_distance = guard.distances(level)
        order.guaranteed_stop, order.trailing_stop = guard.guaranteed_stop, guard.trailing_stop
        sim.world.book.add_activity(
            now, order, "USER", "WORKING_ORDER", "MODIFIED", **order_details(order)
        )
        reference = sim.world.book.next_order_reference()
        _order_confirm(sim, index, reference, order, now, "AMENDED", "AMENDED")
    return _reply({"dealReference": reference})


def delete_working_order(sim: Simulator, request: Request) -> Reply:
    index, now = _begin(sim, request)
    with sim.world.book.lock:
        order = _working_order(sim, request, index, now)
        end_order(sim, order, now, "CANCELLED", "USER")
        reference = sim.world.book.next_order_reference()
        _order_confirm(sim, index, reference, order, now, "DELETED", "DELETED")
    return _reply({"dealReference": reference})


ROUTES: dict[tuple[str, str], Handler] = {
    ("POST", "/positions"): post_position,
    ("PUT", "/positions/{dealId}"): put_position,
    ("DELETE", "/positions/{dealId}"): delete_position,
    ("POST", "/workingorders"): post_working_order,
    ("PUT", "/workingorders/{dealId}"): put_working_order,
    ("DELETE", "/workingorders/{dealId}"): delete_working_order,
}
