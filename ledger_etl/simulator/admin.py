"""`/_sim/...`: the operator side of the simulator (outside `/api/v1`, no session needed).

Ground truth (every row, visible or not, in ISO 8601 half-open ranges), balances at an instant,
fault profiles at run time, the clock, session expiry, and request statistics.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.faults import FaultConfigError
from ledger_etl.simulator.history import render_activity, render_transaction

if TYPE_CHECKING:
    from ledger_etl.simulator.app import Handler, Reply, Request, Simulator

MAX_TRUTH_ROWS = 2_000_000


def _reply(status: int, body: Any) -> Reply:
    from ledger_etl.simulator.app import Reply

    return Reply(status, body)


def _instant(params: dict[str, str], name: str, default: datetime | None = None) -> datetime:
    raw = params.get(name)
    if raw is None:
        if default is None:
            raise ApiError(400, f"error.missing.{name}")
        return default
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"error.invalid.{name}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _account(sim: Simulator, params: dict[str, str]) -> int:
    """The account asked for; the deal book is brought up to now first (orders fill or expire
    as the clock passes), so the truth includes what dealing did."""
    from ledger_etl.simulator.execution import settle

    spec = sim.world.account(params.get("account", ""))
    if spec is None:
        raise ApiError(404, "error.not-found.account")
    settle(sim)
    return spec.index


def health(sim: Simulator, request: Request) -> Reply:
    return _reply(200, {"status": "OK", "clock": sim.clock.describe()})


def accounts(sim: Simulator, request: Request) -> Reply:
    return _reply(
        200,
        {
            "clientId": sim.world.client_id,
            "accounts": [
                {
                    "accountId": a.account_id,
                    "name": a.name,
                    "currency": a.currency,
                    "wireCurrency": a.wire_currency,
                    "opened": a.opened.isoformat(),
                    "preferred": a.preferred,
                }
                for a in sim.world.accounts
            ],
        },
    )


def _truth(sim: Simulator, request: Request, kind: str) -> Reply:
    index = _account(sim, request.params)
    now = sim.clock.now()
    start = _instant(request.params, "from")
    end = min(_instant(request.params, "to", now), now)
    offset = sim.world.utc_offset_hours(now)
    rows = []
    for row in sim.world.rows_between(index, kind, start, end):
        if len(rows) >= MAX_TRUTH_ROWS:
            raise ApiError(413, "error.truth.too-many-rows")
        if kind == "transaction":
            rows.append(render_transaction(row, offset))
        else:
            rows.append(render_activity(row, offset, detailed=True))
    key = "transactions" if kind == "transaction" else "activities"
    return _reply(200, {key: rows, "from": start.isoformat(), "to": end.isoformat()})


def truth_transactions(sim: Simulator, request: Request) -> Reply:
    return _truth(sim, request, "transaction")


def truth_activity(sim: Simulator, request: Request) -> Reply:
    return _truth(sim, request, "activity")


def truth_balance(sim: Simulator, request: Request) -> Reply:
    index = _account(sim, request.params)
    at = _instant(request.params, "at", sim.clock.now())
    balance = sim.world.balance_at(index, at)
    return _reply(
        200,
        {
            "accountId": sim.world.accounts[index].account_id,
            "at": at.isoformat(),
            "balance": str(balance),
            "currency": sim.world.accounts[index].currency,
        },
    )


def get_faults(sim: Simulator, request: Request) -> Reply:
    return _reply(200, sim.faults.describe())


def put_faults(sim: Simulator, request: Request) -> Reply:
    try:
        sim.faults.replace(request.json())
    except FaultConfigError as exc:
        return _reply(400, {"errorCode": "error.invalid.faults", "message": str(exc)})
    return _reply(200, sim.faults.describe())


def post_fault_rule(sim: Simulator, request: Request) -> Reply:
    try:
        sim.faults.add_rule(request.json())
    except (FaultConfigError, TypeError) as exc:
        return _reply(400, {"errorCode": "error.invalid.faults", "message": str(exc)})
    return _reply(200, sim.faults.describe())


def delete_faults(sim: Simulator, request: Request) -> Reply:
    sim.faults.replace({})
    return _reply(200, sim.faults.describe())


def get_clock(sim: Simulator, request: Request) -> Reply:
    return _reply(200, sim.clock.describe())


def post_clock(sim: Simulator, request: Request) -> Reply:
    body = request.json()
    try:
        if "set" in body:
            sim.clock.set(_instant({"set": str(body["set"])}, "set"))
        if "advance_seconds" in body:
            sim.clock.advance(float(body["advance_seconds"]))
        if body.get("freeze") is True:
            sim.clock.freeze()
        if body.get("freeze") is False:
            sim.clock.unfreeze()
        if "rate" in body:
            sim.clock.set_rate(float(body["rate"]))
    except (TypeError, ValueError):
        raise ApiError(400, "error.invalid.clock") from None
    return _reply(200, sim.clock.describe())


def vanish_deal(sim: Simulator, request: Request) -> Reply:
    """Remove an open position or working order behind the client's back: no activity row, no
    transaction, no confirm; it is simply gone from /positions or /workingorders from now on
    (for testing how a client notices deals that vanish without explanation)."""
    from ledger_etl.simulator.execution import vanish

    index = _account(sim, request.params)
    kind = vanish(sim, index, request.params["_path_dealId"], sim.clock.now())
    if kind is None:
        raise ApiError(404, "error.not-found.dealId")
    return _reply(200, {"dealId": request.params["_path_dealId"], "removed": kind})


def expire_sessions(sim: Simulator, request: Request) -> Reply:
    return _reply(200, {"expired": sim.sessions.expire_all()})


def stats(sim: Simulator, request: Request) -> Reply:
    data = sim.stats.snapshot()
    data["active_sessions"] = sim.sessions.active_count()
    data["faults"] = sim.faults.describe()
    return _reply(200, data)


def requests_log(sim: Simulator, request: Request) -> Reply:
    try:
        limit = int(request.params.get("limit", "1000"))
    except ValueError:
        raise ApiError(400, "error.invalid.limit") from None
    with sim.stats.lock:
        entries = list(sim.stats.log)[-limit:] if limit > 0 else []
    return _reply(200, {"requests": entries})


def reset_stats(sim: Simulator, request: Request) -> Reply:
    with sim.stats.lock:
        sim.stats.by_path.clear()
        sim.stats.by_status.clear()
        sim.stats.logins = sim.stats.throttled = sim.stats.faults_fired = 0
        sim.stats.log.clear()
    return _reply(200, {"status": "OK"})


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/health"): health,
    ("GET", "/accounts"): accounts,
    ("GET", "/truth/transactions"): truth_transactions,
    ("GET", "/truth/activity"): truth_activity,
    ("GET", "/truth/balance"): truth_balance,
    ("GET", "/faults"): get_faults,
    ("PUT", "/faults"): put_faults,
    ("POST", "/faults/rules"): post_fault_rule,
    ("DELETE", "/faults"): delete_faults,
    ("GET", "/clock"): get_clock,
    ("POST", "/clock"): post_clock,
    ("POST", "/sessions/expire"): expire_sessions,
    ("DELETE", "/deals/{dealId}"): vanish_deal,
    ("GET", "/stats"): stats,
    ("DELETE", "/stats"): reset_stats,
    ("GET", "/requests"): requests_log,
}

from ledger_etl.simulator import stream_admin  # noqa: E402 - it imports helpers from here

ROUTES[("GET", "/truth/bars")] = stream_admin.get_truth_bars
ROUTES[("GET", "/stream")] = stream_admin.get_stream
