"""Answers from stored snapshots: positions, orders and exposure of an account at an instant.

Every answer is "as of" the latest complete poll at or before the instant asked about; that
poll's time is the `as_of` reported, so a reader sees how fresh the answer is.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, select

from ledger_etl.ledger.schema import deal_lifecycles

from . import store
from .exposure import Exposure, InstrumentInput, PositionInput, aggregate, position_exposure
from .exposure import reconcile as reconcile_upl
from .fx import fx_epics

SNAPSHOT_COLUMNS = (
    "deal_id",
    "epic",
    "direction",
    "size",
    "level",
    "stop_level",
    "stop_distance",
    "profit_level",
    "profit_distance",
    "guaranteed_stop",
    "trailing_stop",
    "created_at",
    "deal_reference",
    "working_order_id",
    "observed_from",
)
ORDER_COLUMNS = (*SNAPSHOT_COLUMNS, "order_type", "time_in_force", "good_till")


def snapshot_rows(
    engine: Engine, kind: str, account_id: str, at: datetime | None
) -> tuple[datetime, list[dict[str, Any]]]:
    """(as_of, rows) for `kind` (position | order); orders carry their lifecycle state."""
    with engine.connect() as conn:
        poll = store.poll_at(conn, account_id, at)
        rows = store.rows_as_of(conn, kind, account_id, poll.observed_at)
        columns = SNAPSHOT_COLUMNS if kind == "position" else ORDER_COLUMNS
        found = [{c: getattr(r, c) for c in columns} for r in rows]
        states = _states(conn, account_id, [r["deal_id"] for r in found])
    for row in found:
        row["state"] = states.get(row["deal_id"])
    return poll.observed_at, found


def plain(value: Any) -> Any:
    """A JSON value: instants in ISO 8601, decimals as exact strings."""
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | str | list | dict):
        return value
    return format(value, "f") if hasattr(value, "is_finite") else str(value)


def orders_at(
    engine: Engine, account_id: str, at: datetime | None, state: str | None = None
) -> tuple[datetime, list[dict[str, Any]]]:
    """(as_of, working orders), only those in lifecycle `state` when given (any case)."""
    as_of, rows = snapshot_rows(engine, "order", account_id, at)
    if state:
        rows = [r for r in rows if (r["state"] or "").upper() == state.upper()]
    return as_of, rows


def orders_json(
    engine: Engine, account_id: str, at: datetime | None, state: str | None = None
) -> dict[str, Any]:
    """The orders contract of `ledger-etl orders --format json` and `/api/orders`."""
    as_of, rows = orders_at(engine, account_id, at, state)
    return {
        "account_id": account_id,
        "as_of": as_of.isoformat(),
        "rows": [{k: plain(v) for k, v in r.items()} for r in rows],
    }


def _states(conn: Any, account_id: str, deal_ids: list[str]) -> dict[str, str]:
    c = deal_lifecycles.c
    out: dict[str, str] = {}
    for start in range(0, len(deal_ids), 500):
        rows = conn.execute(
            select(c.deal_id, c.state).where(
                c.account_id == account_id, c.deal_id.in_(deal_ids[start : start + 500])
            )
        )
        out.update({r.deal_id: r.state for r in rows})
    return out


def exposure_at(engine: Engine, account_id: str, at: datetime | None = None) -> Exposure:
    """Exposure from the stored snapshot, quotes and instrument versions valid at that poll."""
    with engine.connect() as conn:
        poll = store.poll_at(conn, account_id, at)
        instant = poll.observed_at
        currency = poll.currency or "UNKNOWN"
        rows = store.rows_as_of(conn, "position", account_id, instant)
        epics = {r.epic for r in rows}
        instruments = store.instruments_as_of(conn, epics, instant)
        currencies = {i.currency for i in instruments.values() if i.currency}
        quotes = store.latest_quotes(conn, epics | fx_epics(currencies, currency), instant)
    positions = []
    for r in rows:
        inst = instruments.get(r.epic)
        given = PositionInput(
            r.deal_id, r.epic, r.direction, r.size, r.level, r.stop_level, r.stop_distance
        )
        info = (
            None
            if inst is None
            else InstrumentInput(
                inst.instrument_id,
                inst.asset_class,
                inst.currency,
                inst.lot_size,
                inst.margin_factor,
                inst.margin_factor_unit,
            )
        )
        positions.append(position_exposure(given, info, quotes.get(r.epic), currency, quotes))
    result = aggregate(account_id, currency, instant, positions)
    figures = poll.figures or {}
    broker_upl = {k: (None if v is None else Decimal(v)) for k, v in figures.get("upl", {}).items()}
    total = figures.get("profit_loss")
    result.reconciliation = reconcile_upl(
        result, None if total is None else Decimal(total), broker_upl
    )
    for name in ("balance", "available"):
        if figures.get(name) is not None:
            result.reconciliation[f"broker_{name}"] = figures[name]
    return result


def _text(value: Decimal | None) -> str | None:
    """An exact decimal string (no exponent, no float)."""
    if value is None:
        return None
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def exposure_json(exposure: Exposure) -> dict[str, Any]:
    """The exposure contract other tools read; amounts are exact decimal strings."""

    def figures(bucket: dict[str, Decimal]) -> dict[str, Any]:
        out: dict[str, Any] = {k: _text(v) for k, v in bucket.items() if k != "positions"}
        if "positions" in bucket:
            out["positions"] = int(bucket["positions"])
        return out

    return {
        "account_id": exposure.account_id,
        "currency": exposure.currency,
        "as_of": exposure.as_of.isoformat(),
        "positions": [
            {
                "deal_id": p.deal_id,
                "epic": p.epic,
                "instrument_id": p.instrument_id,
                "direction": p.direction,
                "size": _text(p.size),
                "open_level": _text(p.open_level),
                "price": _text(p.price),
                "fx_rate": _text(p.fx_rate),
                "fx_source": p.fx_source,
                "notional": _text(p.notional),
                "margin": _text(p.margin),
                "upl": _text(p.upl),
                "risk_to_stop": _text(p.risk_to_stop),
                "asset_class": p.asset_class,
                "instrument_currency": p.currency,
                "flags": p.flags,
            }
            for p in exposure.positions
        ],
        "totals": {k: _text(v) for k, v in exposure.totals.items()},
        "by_asset_class": {k: figures(v) for k, v in sorted(exposure.by_asset_class.items())},
        "by_epic": {k: figures(v) for k, v in sorted(exposure.by_epic.items())},
        "by_currency": {k: figures(v) for k, v in sorted(exposure.by_currency.items())},
        "breaches": exposure.breaches,
        "reconciliation": exposure.reconciliation,
    }
