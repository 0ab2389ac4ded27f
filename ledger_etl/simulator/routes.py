"""Handlers of `/api/v1`: request rules, response shapes and error codes of Capital.com."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ledger_etl.simulator import catalog, dealing, watchlists
from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.events import OrderLife, PositionLife
from ledger_etl.simulator.execution import account_funds, settle, unrealised
from ledger_etl.simulator.history import (
    matches,
    parse_query,
    render_activity,
    render_transaction,
    row_key,
)
from ledger_etl.simulator.wire import format_local_datetime, format_row_datetime

if TYPE_CHECKING:
    from ledger_etl.simulator.app import Handler, Reply, Request, Simulator


def _streaming_host(request: Request) -> str:
    """This server as a WebSocket host (`ws://host:port/`; clients add `connect`), never the
    vendor's: a client that follows `streamingHost` streams from the simulator it logged in to."""
    return f"ws://{request.headers.get('host', '127.0.0.1')}/"


def _reply(status: int, body: Any) -> Reply:
    from ledger_etl.simulator.app import Reply

    return Reply(status, body)


def _auth(sim: Simulator, request: Request) -> None:
    request.session = sim.sessions.authenticate(
        request.headers.get("cst"), request.headers.get("x-security-token")
    )
    # Working orders of the deal book fill or expire as the clock passes; bring them up to now
    # before anything is read, so every view sees the same instant.
    settle(sim)


def _api_key(sim: Simulator, request: Request) -> None:
    key = request.headers.get("x-cap-api-key")
    if not key:
        raise ApiError(400, "error.null.api.key")
    if not secrets.compare_digest(key.encode(), sim.config.api_key.encode()):
        # What the live API answers for an unknown or other-environment key.
        raise ApiError(400, "error.null.client.token")


def _now(sim: Simulator) -> datetime:
    return sim.clock.now()


def _account_index(sim: Simulator, request: Request) -> int:
    assert request.session is not None
    spec = sim.world.account(request.session.account_id)
    assert spec is not None
    return spec.index


def _offset(sim: Simulator) -> int:
    return sim.world.utc_offset_hours(_now(sim))


# -- general ------------------------------------------------------------------------------------
def get_time(sim: Simulator, request: Request) -> Reply:
    return _reply(200, {"serverTime": int(sim.clock.timestamp() * 1000)})


def get_ping(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    return _reply(200, {"status": "OK"})


# -- session ------------------------------------------------------------------------------------
def get_encryption_key(sim: Simulator, request: Request) -> Reply:
    _api_key(sim, request)
    return _reply(
        200,
        {
            "encryptionKey": sim.decryptor.public_key_b64,
            "timeStamp": int(sim.clock.timestamp() * 1000),
        },
    )


def _balance_block(sim: Simulator, index: int) -> dict[str, float]:
    balance, upl, margin = account_funds(sim, index, _now(sim))
    return {
        "balance": float(balance),
        "deposit": float(balance),
        "profitLoss": float(upl.quantize(Decimal("0.01"))),
        "available": float((balance + upl - margin).quantize(Decimal("0.01"))),
    }


def post_session(sim: Simulator, request: Request) -> Reply:
    _api_key(sim, request)
    body = request.json()
    identifier, password = body.get("identifier"), body.get("password")
    if not isinstance(identifier, str) or not isinstance(password, str):
        raise ApiError(400, "error.invalid.details")
    encrypted = body.get("encryptedPassword", False)
    if encrypted not in (True, False):
        raise ApiError(400, "error.invalid.details")
    if encrypted:
        decrypted = sim.decryptor.decrypt(password)
        if decrypted is None:
            raise ApiError(401, "error.invalid.details")
        password, stamp = decrypted
        max_age = sim.config.encryption_max_age_seconds
        if max_age is not None and abs(sim.clock.timestamp() * 1000 - stamp) > max_age * 1000:
            raise ApiError(401, "error.invalid.details")
    if not (
        secrets.compare_digest(identifier.encode(), sim.config.identifier.encode())
        and secrets.compare_digest(password.encode(), sim.config.password.encode())
    ):
        raise ApiError(401, "error.invalid.details")
    preferred = next(a for a in sim.world.accounts if a.preferred)
    settle(sim)  # the balance below includes orders filled since the last request
    request.session = sim.sessions.create(sim.world.client_id, preferred.account_id)
    accounts = [_account_item(sim, a.index, with_status=False) for a in sim.world.accounts]
    return _reply(
        200,
        {
            "accountType": preferred.account_type,
            "accountInfo": _balance_block(sim, preferred.index),
            "currencyIsoCode": preferred.currency,
            "currencySymbol": preferred.symbol,
            "currentAccountId": preferred.account_id,
            "streamingHost": _streaming_host(request),
            "accounts": accounts,
            "clientId": sim.world.client_id,
            "timezoneOffset": _offset(sim),
            "hasActiveDemoAccounts": sim.config.world.demo,
            "hasActiveLiveAccounts": not sim.config.world.demo,
            "trailingStopsEnabled": False,
        },
    )


def get_session(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    assert request.session is not None
    spec = sim.world.account(request.session.account_id)
    assert spec is not None
    return _reply(
        200,
        {
            "clientId": sim.world.client_id,
            "accountId": spec.account_id,
            "timezoneOffset": _offset(sim),
            "locale": "en",
            "currency": spec.currency,
            "streamEndpoint": _streaming_host(request),
        },
    )


def put_session(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    assert request.session is not None
    target = request.json().get("accountId")
    if not isinstance(target, str) or sim.world.account(target) is None:
        raise ApiError(400, "error.invalid.accountId")
    if target == request.session.account_id:
        raise ApiError(400, "error.not-different.accountId")
    request.session.account_id = target
    sim.stream.account_switched(request.session.cst)  # switching kills the session's streams
    return _reply(
        200,
        {
            "trailingStopsEnabled": False,
            "dealingEnabled": True,
            "hasActiveDemoAccounts": sim.config.world.demo,
            "hasActiveLiveAccounts": not sim.config.world.demo,
        },
    )


def delete_session(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    assert request.session is not None
    sim.sessions.end(request.session.cst)
    return _reply(200, {"status": "SUCCESS"})


# -- accounts -----------------------------------------------------------------------------------
def _account_item(sim: Simulator, index: int, with_status: bool = True) -> dict[str, Any]:
    spec = sim.world.accounts[index]
    item: dict[str, Any] = {"accountId": spec.account_id, "accountName": spec.name}
    if with_status:
        item["status"] = spec.status
    item.update(
        accountType=spec.account_type,
        preferred=spec.preferred,
        balance=_balance_block(sim, index),
        currency=spec.currency,
        symbol=spec.symbol,
    )
    return item


def get_accounts(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    opened = [a for a in sim.world.accounts if a.opened <= _now(sim).date()]
    items = [_account_item(sim, a.index) for a in opened]
    return _reply(200, {"accounts": sim.faults.corrupt("accounts", items)})


def get_preferences(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    return _reply(200, sim.preferences or sim.market.account_preferences())


def put_preferences(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    body = request.json()
    current = sim.preferences or sim.market.account_preferences()
    leverages = body.get("leverages", {})
    if not isinstance(leverages, dict):
        raise ApiError(400, "error.invalid.leverage.value")
    for group, value in leverages.items():
        options = current["leverages"].get(group)
        if options is None or value not in options["available"]:
            raise ApiError(400, "error.invalid.leverage.value")
    for group, value in leverages.items():
        current["leverages"][group]["current"] = value
    if "hedgingMode" in body:
        if not isinstance(body["hedgingMode"], bool):
            raise ApiError(400, "error.invalid.hedgingMode")
        current["hedgingMode"] = body["hedgingMode"]
    sim.preferences = current
    return _reply(200, {"status": "SUCCESS"})


# -- history ------------------------------------------------------------------------------------
def _history(sim: Simulator, request: Request, endpoint: str) -> Reply:
    _auth(sim, request)
    now = _now(sim)
    query = parse_query(
        request.params, endpoint, now, sim.config.history_bounds, sim.config.transactions_max_days
    )
    index = _account_index(sim, request)
    kind = "transaction" if endpoint == "transactions" else "activity"
    end = min(query.end, now + timedelta(microseconds=1))  # a row stamped `now` is visible
    offset = _offset(sim)
    rows = []
    for row in sim.world.rows_between(index, kind, query.start, end):
        delay = sim.faults.delay_for(endpoint, row_key(row))
        if delay and row.ts + timedelta(seconds=delay) > now:
            continue
        if matches(row, query):
            rows.append(row)
    rows.reverse()  # newest first, as the live API answers
    limit = sim.faults.truncate_above
    if limit is not None and len(rows) > limit:
        rows = rows[:limit]  # silent: no marker, no paging metadata, just fewer rows
    if endpoint == "transactions":
        rendered = [render_transaction(r, offset) for r in rows]
        return _reply(200, {"transactions": sim.faults.corrupt(endpoint, rendered)})
    rendered = [render_activity(r, offset, query.detailed) for r in rows]
    return _reply(200, {"activities": sim.faults.corrupt(endpoint, rendered)})


def get_transactions(sim: Simulator, request: Request) -> Reply:
    return _history(sim, request, "transactions")


def get_activity(sim: Simulator, request: Request) -> Reply:
    return _history(sim, request, "activity")


# -- positions, orders, confirms ----------------------------------------------------------------
def _market_items(sim: Simulator, now: datetime) -> Callable[[str], dict[str, Any]]:
    """The `market` block of one answer, computed once per epic (a snapshot's day range costs
    far more than the rest of an item)."""
    offset, cache = _offset(sim), dict[str, dict[str, Any]]()

    def item(epic: str) -> dict[str, Any]:
        if epic not in cache:
            cache[epic] = sim.market.market_item(epic, now, offset_hours=offset)
        return dict(cache[epic])

    return item


def _position_item(
    sim: Simulator, p: PositionLife, now: datetime, market: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    offset = _offset(sim)
    position: dict[str, Any] = {
        "contractSize": 1,
        "createdDate": format_local_datetime(p.opened, offset),
        "createdDateUTC": format_row_datetime(p.opened),
        "dealId": p.deal_id,
        "dealReference": p.deal_reference,
        "workingOrderId": p.working_order_id or p.deal_id,
        "size": float(p.size_at(now)),
        "leverage": _leverage(p.epic),
        "upl": float(unrealised(sim, p, now).quantize(Decimal("0.01"))),
        "direction": p.direction,
        "level": float(p.level),
        "currency": sim.world.accounts[p.account].currency,
        "guaranteedStop": p.guaranteed_stop,
    }
    stop, profit = p.stops_at(now)
    if stop is not None:
        position["stopLevel"] = float(stop)
        position["trailingStop"] = p.trailing_stop
    if profit is not None:
        position["profitLevel"] = float(profit)
    return {"position": position, "market": market(p.epic)}


def get_positions(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    now = _now(sim)
    index = _account_index(sim, request)
    market = _market_items(sim, now)
    return _reply(
        200,
        {
            "positions": [
                _position_item(sim, p, now, market) for p in sim.world.open_positions(index, now)
            ]
        },
    )


def get_position(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    now = _now(sim)
    deal_id = request.params["_path_dealId"]
    for p in sim.world.open_positions(_account_index(sim, request), now):
        if p.deal_id == deal_id:
            return _reply(200, _position_item(sim, p, now, _market_items(sim, now)))
    raise ApiError(404, "error.not-found.dealId")


def _order_item(
    sim: Simulator, o: OrderLife, now: datetime, market: Callable[[str], dict[str, Any]]
) -> dict[str, Any]:
    offset = _offset(sim)
    data: dict[str, Any] = {
        "dealId": o.deal_id,
        "direction": o.direction,
        "epic": o.epic,
        "orderSize": float(o.size),
        "leverage": _leverage(o.epic),
        "orderLevel": float(o.level),
        "timeInForce": "GOOD_TILL_DATE" if o.good_till else "GOOD_TILL_CANCELLED",
    }
    if o.good_till:
        data["goodTillDate"] = format_local_datetime(o.good_till, offset) + ".000"
        data["goodTillDateUTC"] = format_row_datetime(o.good_till) + ".000"
    data.update(
        {
            "createdDate": format_local_datetime(o.created, offset),
            "createdDateUTC": format_row_datetime(o.created),
            "guaranteedStop": o.guaranteed_stop,
            "orderType": o.order_type,
        }
    )
    if o.stop_distance is not None:
        data["stopDistance"] = float(o.stop_distance)
    if o.profit_distance is not None:
        data["profitDistance"] = float(o.profit_distance)
    data.update(
        {"trailingStop": o.trailing_stop, "currencyCode": sim.world.accounts[o.account].currency}
    )
    return {"workingOrderData": data, "marketData": market(o.epic)}


def get_working_orders(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    now = _now(sim)
    index = _account_index(sim, request)
    market = _market_items(sim, now)
    return _reply(
        200,
        {
            "workingOrders": [
                _order_item(sim, o, now, market) for o in sim.world.open_orders(index, now)
            ]
        },
    )


def get_confirm(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    now = _now(sim)
    index = _account_index(sim, request)
    reference = request.params["_path_dealReference"]
    dealt = sim.world.book.find(reference)
    if dealt is not None:
        if dealt["account"] != index:
            raise ApiError(404, "error.not-found.dealReference")
        return _reply(200, dealt["body"])
    deal = sim.world.find_deal(reference)
    if deal is None or deal.account != index:
        raise ApiError(404, "error.not-found.dealReference")
    if isinstance(deal, PositionLife):
        if deal.opened > now:
            raise ApiError(404, "error.not-found.dealReference")
        status = "OPEN" if now < deal.closed else "CLOSED"
        affected = [
            {"dealId": deal.deal_id, "status": "OPENED" if status == "OPEN" else "FULLY_CLOSED"}
        ]
        when, epic, level, size, direction = (
            deal.opened,
            deal.epic,
            deal.level,
            deal.size,
            deal.direction,
        )
    else:
        if deal.created > now:
            raise ApiError(404, "error.not-found.dealReference")
        status = "OPEN" if now < deal.ended else "DELETED"
        affected = [{"dealId": deal.deal_id, "status": "OPENED" if status == "OPEN" else "DELETED"}]
        when, epic, level, size, direction = (
            deal.created,
            deal.epic,
            deal.level,
            deal.size,
            deal.direction,
        )
    return _reply(
        200,
        {
            "date": format_row_datetime(when),
            "status": status,
            "reason": "SUCCESS",
            "dealStatus": "ACCEPTED",
            "epic": epic,
            "dealReference": deal.deal_reference,
            "dealId": deal.deal_id,
            "affectedDeals": affected,
            "level": float(level),
            "size": float(size),
            "direction": direction,
            "guaranteedStop": False,
            "trailingStop": False,
        },
    )


def _leverage(epic: str) -> int:
    return int(catalog.instrument(epic).leverage)


# -- markets ------------------------------------------------------------------------------------
def get_markets(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    return _reply(
        200,
        sim.market.search_markets(
            request.params.get("searchTerm"),
            request.params.get("epics"),
            _now(sim),
            markets_without_params=sim.config.markets_without_params,
        ),
    )


def get_market(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    return _reply(
        200,
        sim.market.market_details(
            request.params["_path_epic"], _now(sim), offset_hours=_offset(sim)
        ),
    )


def get_navigation(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    return _reply(200, sim.market.market_navigation(None, request.params.get("limit"), _now(sim)))


def get_navigation_node(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    return _reply(
        200,
        sim.market.market_navigation(
            request.params["_path_nodeId"], request.params.get("limit"), _now(sim)
        ),
    )


def get_prices(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    p = request.params
    return _reply(
        200,
        sim.market.prices(
            p["_path_epic"],
            p.get("resolution"),
            p.get("max"),
            p.get("from"),
            p.get("to"),
            _now(sim),
            offset_hours=_offset(sim),
        ),
    )


def get_sentiments(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    return _reply(200, sim.market.client_sentiment(request.params.get("marketIds"), _now(sim)))


def get_sentiment(sim: Simulator, request: Request) -> Reply:
    _auth(sim, request)
    return _reply(200, sim.market.client_sentiment_one(request.params["_path_marketId"], _now(sim)))


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/time"): get_time,
    ("GET", "/ping"): get_ping,
    ("GET", "/session/encryptionKey"): get_encryption_key,
    ("GET", "/session"): get_session,
    ("POST", "/session"): post_session,
    ("PUT", "/session"): put_session,
    ("DELETE", "/session"): delete_session,
    ("GET", "/accounts"): get_accounts,
    ("GET", "/accounts/preferences"): get_preferences,
    ("PUT", "/accounts/preferences"): put_preferences,
    ("GET", "/history/activity"): get_activity,
    ("GET", "/history/transactions"): get_transactions,
    ("GET", "/positions"): get_positions,
    ("GET", "/positions/{dealId}"): get_position,
    ("GET", "/workingorders"): get_working_orders,
    ("GET", "/confirms/{dealReference}"): get_confirm,
    ("GET", "/markets"): get_markets,
    ("GET", "/markets/{epic}"): get_market,
    ("GET", "/marketnavigation"): get_navigation,
    ("GET", "/marketnavigation/{nodeId}"): get_navigation_node,
    ("GET", "/prices/{epic}"): get_prices,
    ("GET", "/clientsentiment"): get_sentiments,
    ("GET", "/clientsentiment/{marketId}"): get_sentiment,
    **watchlists.ROUTES,  # GET, POST, PUT, DELETE of /watchlists (simulator/watchlists.py)
    **dealing.ROUTES,
}
