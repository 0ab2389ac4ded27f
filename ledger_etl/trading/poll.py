"""One poll of one account: read the live state, store what changed, fold the lifecycles.

Reads (all through the client): positions, working orders, the account's figures, market
details of every epic held (plus the FX markets the conversions need), and the activity since
the previous poll (with a two-minute overlap for late rows). Writes, in one transaction:
instrument versions that changed, quotes that changed, snapshot rows for deals whose content
changed, lifecycle transitions, and the poll record, which is the coverage: an unchanged
account writes the poll record and nothing else.

A failed read writes a `failed` poll record and no snapshot: a deal missing from a failed read
must never look closed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ledger_etl.capital.errors import AuthenticationError, CapitalError
from ledger_etl.capital.history import ACTIVITY, fetch_history
from ledger_etl.capital.models import Account, Activity, RowProblem
from ledger_etl.capital.trading import (
    fetch_market_details,
    fetch_positions,
    fetch_working_orders,
)
from ledger_etl.ledger.db import upgrade

from . import changelog, store
from .events import activity_events
from .fx import fx_epics
from .instruments import attributes_from, load_mapping
from .lifecycle import DEFAULT_GRACE, ORDER, POSITION
from .snapshots import order_state, position_state
from .tracker import LifecycleTracker

ACTIVITY_OVERLAP = timedelta(minutes=2)
FIRST_ACTIVITY_SPAN = timedelta(hours=1)


@dataclass
class PollResult:
    account_id: str
    observed_at: datetime
    status: str
    currency: str | None = None
    positions: int = 0
    orders: int = 0
    snapshot_rows: int = 0  # snapshot rows inserted or closed
    rows_written: int = 0  # every row but the poll record
    transitions: int = 0
    problems: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    poll_id: int | None = None


def account_currency(account: Account | None) -> str | None:
    """ISO code of the account currency (demo accounts send `USDd`)."""
    code = account.currency if account else None
    if code and len(code) == 4 and code.endswith("d"):
        return code[:3]
    return code


def _problem(kind: str, problem: RowProblem) -> dict[str, Any]:
    """A flagged row for the poll record: its amounts as exact strings (JSON has no Decimal)."""
    row = json.loads(json.dumps(problem.row, default=str))
    return {"kind": kind, "reason": problem.reason, "row": row}


def poll_account(
    client: Any,
    engine: Engine,
    account_id: str,
    *,
    observed_at: datetime | None = None,
    mapping_file: Path | None = None,
    grace: timedelta = DEFAULT_GRACE,
    with_activity: bool = True,
    migrate: bool = True,
) -> PollResult:
    """Poll `account_id` once and store the result (see the module docstring)."""
    if migrate:
        upgrade(engine)
    mapping = load_mapping(mapping_file)
    now = observed_at or client.server_time()
    try:
        with client.on_account(account_id):
            positions = fetch_positions(client)
            orders = fetch_working_orders(client)
        accounts = {a.account_id: a for a in client.accounts()}
    except AuthenticationError:
        raise
    except CapitalError as error:
        return _failed(engine, account_id, now, str(error))
    account = accounts.get(account_id)
    currency = account_currency(account)
    result = PollResult(account_id, now, "complete", currency)
    result.problems += [_problem("position", p) for p in positions.problems]
    result.problems += [_problem("working_order", p) for p in orders.problems]
    pos_states = [position_state(r, t) for r, t in zip(positions.rows, positions.raws, strict=True)]
    ord_states = [order_state(r, t) for r, t in zip(orders.rows, orders.raws, strict=True)]
    epics = {s.values["epic"] for s in pos_states + ord_states}
    details = fetch_market_details(client, epics)
    currencies = {d.instrument.currency for d in details.details.values() if d.instrument.currency}
    fx_needed = fx_epics(currencies, currency) - set(details.details) if currency else set()
    fx_details = fetch_market_details(client, fx_needed)  # unknown pairs are expected here
    result.problems += [
        {"kind": "instrument", "reason": f"unknown epic {e}: no market details", "row": {"epic": e}}
        for e in details.unknown_epics
    ]
    result.problems += [_problem("instrument", p) for p in details.problems]
    quotes = _quotes(details.details, "markets")
    quotes.update(_quotes(fx_details.details, "markets"))
    quotes.update(_position_quotes(positions.rows, quotes))
    activity: list[Activity] = []
    with engine.begin() as conn:
        previous = store.last_poll(conn, account_id)
    if with_activity:
        since = previous.observed_at - ACTIVITY_OVERLAP if previous else now - FIRST_ACTIVITY_SPAN
        start = since.replace(microsecond=0)
        end = now.replace(microsecond=0) + timedelta(seconds=1)
        history = fetch_history(client, account_id, ACTIVITY, start, end, max_workers=1)
        activity = [r for r in history.rows if isinstance(r, Activity)]
        if history.gaps():
            result.problems.append(
                {
                    "kind": "activity",
                    "reason": "activity not fully read",
                    "row": {"from": since.isoformat(), "to": now.isoformat()},
                }
            )
    attrs = [attributes_from(d, mapping.get(e, {})) for e, d in details.details.items()]
    attrs += [attributes_from(d, mapping.get(e, {})) for e, d in fx_details.details.items()]
    for a in attrs:
        if a.missing():
            result.problems.append(
                {
                    "kind": "instrument",
                    "row": {"epic": a.epic},
                    "reason": f"market details lack {', '.join(a.missing())}",
                }
            )
    broker_upl = {s.deal_id: s.upl for s in pos_states}
    with engine.begin() as conn:
        written = store.upsert_instruments(conn, now, attrs)
        written += store.write_quotes(conn, now, quotes)
        for kind, states in ((POSITION, pos_states), (ORDER, ord_states)):
            change = store.write_snapshot(conn, kind, account_id, now, states)
            result.snapshot_rows += change.inserted + change.closed
            written += change.inserted
        tracker = LifecycleTracker(conn, account_id)
        tracker.apply(e for row in activity for e in activity_events(row))
        tracker.observe(POSITION, pos_states, now, grace)
        tracker.observe(ORDER, ord_states, now, grace)
        result.transitions = tracker.flush(now)
        written += result.transitions
        seq, digest = changelog.head(conn, account_id)
        figures = _figures(account, broker_upl)
        figures["changelog_head"] = {"seq": seq, "hash": digest}
        result.poll_id = store.record_poll(
            conn,
            account_id=account_id,
            observed_at=now,
            status="complete",
            currency=currency,
            positions_seen=len(pos_states),
            orders_seen=len(ord_states),
            rows_written=written,
            figures=figures,
            problems=result.problems,
            error=None,
        )
    result.positions, result.orders, result.rows_written = len(pos_states), len(ord_states), written
    return result


def _failed(engine: Engine, account_id: str, now: datetime, error: str) -> PollResult:
    with engine.begin() as conn:
        poll_id = store.record_poll(
            conn,
            account_id=account_id,
            observed_at=now,
            status="failed",
            currency=None,
            positions_seen=0,
            orders_seen=0,
            rows_written=0,
            figures={},
            problems=[],
            error=error,
        )
    return PollResult(account_id, now, "failed", error=error, poll_id=poll_id)


def _quotes(details: Mapping[str, Any], source: str) -> dict[str, tuple]:
    found = {}
    for epic, d in details.items():
        snap = d.snapshot
        if snap is not None and snap.bid is not None and snap.offer is not None:
            found[epic] = (snap.bid, snap.offer, snap.market_status, source)
    return found


def _position_quotes(rows: list[Any], known: Mapping[str, tuple]) -> dict[str, tuple]:
    """Quotes beside the positions: the prices the broker's own upl was computed from."""
    found = {}
    for row in rows:
        m = row.market
        if m.bid is not None and m.offer is not None:
            found[m.epic] = (m.bid, m.offer, m.market_status, "positions")
    return found


def _figures(account: Account | None, broker_upl: Mapping[str, Decimal | None]) -> dict[str, Any]:
    """The broker's own figures at this poll, as exact strings, for reconciliation."""
    figures: dict[str, Any] = {}
    balance = account.balance if account else None
    if balance is not None:
        for name in ("balance", "deposit", "profit_loss", "available"):
            value = getattr(balance, name)
            figures[name] = None if value is None else str(value)
    figures["upl"] = {k: (None if v is None else str(v)) for k, v in broker_upl.items()}
    return figures
