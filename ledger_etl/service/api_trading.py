"""`/api/exposure` and `/api/orders`: trading state of an account at an instant, answered from
stored snapshots by the same functions as `ledger-etl exposure` and `ledger-etl orders`.

Trading state is risk information: the risk and admin roles read it; a finance user gets 403
whatever the account (the role is checked before the account, so the answer reveals nothing
about which accounts exist). An account outside the user's scope is the usual 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from starlette.concurrency import run_in_threadpool

from ledger_etl.errors import InputError
from ledger_etl.service.auth import bearer_user, note, require_role, scoped_account
from ledger_etl.service.users import User
from ledger_etl.trading.cli import parse_at
from ledger_etl.trading.query import exposure_at, exposure_json, orders_json
from ledger_etl.trading.store import NoSnapshotError

router = APIRouter(prefix="/api", tags=["trading"])
UserDep = Annotated[User, Depends(bearer_user)]
TRADING_ROLES = ("risk", "admin")


def trading_request(request: Request, user: User, account: str | None, at: str | None):
    """(account, instant) after the role, scope and `at` checks, in that order."""
    require_role(request, user, *TRADING_ROLES)
    acc = scoped_account(request, user, account)
    try:
        return acc, instant_of(at)
    except InputError as exc:
        note(request, outcome="bad_request")
        raise HTTPException(400, str(exc)) from None


def instant_of(at: str | None) -> datetime | None:
    try:
        return parse_at(at)
    except InputError:
        raise InputError(f"at: {at!r} is not an ISO 8601 instant") from None


def no_snapshot(request: Request, exc: NoSnapshotError) -> HTTPException:
    note(request, outcome="not_found")
    return HTTPException(404, str(exc))


@router.get("/exposure")
async def exposure(
    request: Request,
    user: UserDep,
    account: Annotated[str | None, Query(max_length=64)] = None,
    at: Annotated[str | None, Query(max_length=40)] = None,
) -> Any:
    """Exposure per position and in total, in the account currency, as of the latest complete
    poll at or before `at` (default: the latest); the contract of `ledger-etl exposure
    --format json`, amounts as exact decimal strings."""
    acc, instant = trading_request(request, user, account, at)
    engine = request.app.state.service.reads
    try:
        found = await run_in_threadpool(exposure_at, engine, acc, instant)
    except NoSnapshotError as exc:
        raise no_snapshot(request, exc) from None
    return exposure_json(found)


@router.get("/orders")
async def orders(
    request: Request,
    user: UserDep,
    account: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z_]+$")] = None,
    at: Annotated[str | None, Query(max_length=40)] = None,
) -> Any:
    """Working orders as of the latest complete poll at or before `at`, with their lifecycle
    state, optionally only those in `state`; the contract of `ledger-etl orders --format json`."""
    acc, instant = trading_request(request, user, account, at)
    engine = request.app.state.service.reads
    try:
        return await run_in_threadpool(orders_json, engine, acc, instant, state)
    except NoSnapshotError as exc:
        raise no_snapshot(request, exc) from None
