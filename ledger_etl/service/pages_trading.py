"""The exposure page for the risk role: an account (of those polled and in scope) and an
optional instant, answered by the same `exposure_at` as `/api/exposure` and the CLI.

A plain GET form, no script; a finance user gets a 403 page, an account outside the scope the
same 404 page as one that does not exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine, select

from ledger_etl.errors import InputError
from ledger_etl.ledger.schema import trading_polls
from ledger_etl.service.api_trading import TRADING_ROLES, instant_of
from ledger_etl.service.auth import note, scoped_account
from ledger_etl.service.pages import not_found_page, page_user, render
from ledger_etl.service.users import User
from ledger_etl.trading.query import exposure_at, exposure_json
from ledger_etl.trading.store import NoSnapshotError

router = APIRouter(include_in_schema=False)
POSITION_COLUMNS = (
    ("deal_id", "Deal"), ("epic", "Epic"), ("direction", "Direction"), ("size", "Size"),
    ("price", "Price"), ("notional", "Notional"), ("margin", "Margin"), ("upl", "P&L"),
    ("risk_to_stop", "Risk to stop"),
)  # fmt: skip


def polled_accounts(engine: Engine, user: User) -> list[str]:
    """Accounts with stored trading snapshots that `user` may read."""
    with engine.connect() as conn:
        found = conn.execute(select(trading_polls.c.account_id).distinct()).scalars()
        return sorted(a for a in found if user.may_read(a))


@router.get("/exposure")
def exposure_page(request: Request, account: str = "", at: str = "") -> HTMLResponse:
    user = page_user(request)
    if user.role not in TRADING_ROLES:
        note(request, outcome="forbidden")
        return render(request, "error.html", 403, message="Exposure needs the risk or admin role.")
    engine = request.app.state.service.reads
    context: dict[str, Any] = {
        "accounts": polled_accounts(engine, user), "account": account, "at": at,
        "report": None, "error": None, "columns": POSITION_COLUMNS,
    }  # fmt: skip
    if not account:
        return render(request, "exposure.html", **context)
    try:
        acc = scoped_account(request, user, account)
    except HTTPException:
        return not_found_page(request)
    try:
        context["report"] = exposure_json(exposure_at(engine, acc, instant_of(at or None)))
    except NoSnapshotError as exc:
        note(request, outcome="not_found")
        context["error"] = str(exc)
        return render(request, "exposure.html", 404, **context)
    except InputError as exc:
        note(request, outcome="bad_request")
        context["error"] = str(exc)
        return render(request, "exposure.html", 400, **context)
    return render(request, "exposure.html", **context)
