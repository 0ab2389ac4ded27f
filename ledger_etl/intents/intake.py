"""Intake: one delivery becomes a stored intent, validated, before any answer goes back.

Order of work, and why:
1. the intent is stored under its idempotency key (state RECEIVED) *first*: a repeat of the key,
   concurrent or later, finds the stored row and is answered with its state, sending nothing;
   a different payload under a known key is a 409;
2. the symbol is mapped to an epic (the user's symbol map, then the instrument master's
   TRADINGVIEW ids, then the part after the exchange prefix: `FX:EURUSD` -> `EURUSD`);
3. the request is checked against the market's dealing rules and the allowed-epics list: every
   violation is returned at once (422) and the intent is REJECTED;
4. otherwise it is VALIDATED: queued for the executor, and the sender gets 202 at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ledger_etl.capital.errors import CapitalError
from ledger_etl.errors import InputError
from ledger_etl.trading import store as trading_store

from . import rules, store
from .broker import Broker
from .payload import IntentPayload, canonical_hash, idempotency_key, stored_payload
from .risk import Caps
from .views import intent_view


class SymbolMapError(InputError):
    """A symbol map file that cannot be read or is not a JSON object of strings."""


def load_symbol_map(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise SymbolMapError(f"cannot read symbol map {path}: {error}") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in data.items()
    ):
        raise SymbolMapError(f"symbol map {path} must map symbols to epics (strings)")
    return data


@dataclass(frozen=True)
class Outcome:
    status: int
    body: dict[str, Any]


def resolve_epic(engine: Engine, payload: IntentPayload, symbol_map: dict[str, str]) -> str:
    if payload.epic is not None:
        return payload.epic
    symbol = payload.symbol or ""
    if symbol in symbol_map:
        return symbol_map[symbol]
    with engine.connect() as conn:
        for row in trading_store.current_instruments(conn):
            if (row.external_ids or {}).get("TRADINGVIEW") == symbol:
                return str(row.epic)
    return symbol.rsplit(":", 1)[-1]


class Intake:
    def __init__(
        self, engine: Engine, broker: Broker, caps: Caps, symbol_map: dict[str, str], mode: str
    ) -> None:
        self.engine = engine
        self.broker = broker
        self.caps = caps
        self.symbol_map = symbol_map
        self.mode = mode
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def receive(self, payload: IntentPayload, now: datetime) -> Outcome:
        key, digest = idempotency_key(payload), canonical_hash(payload)
        epic = resolve_epic(self.engine, payload, self.symbol_map)
        created = store.create(
            self.engine,
            account_id=payload.account,
            key=key,
            payload_sha256=digest,
            payload=stored_payload(payload),
            epic=epic,
            action=payload.action,
            mode=self.mode,
            at=now,
        )
        row = created.row
        if not created.created:
            if row.payload_sha256 != digest:
                detail = "this alert_id was already used for a different payload"
                return Outcome(
                    409, {"error": "conflict", "detail": detail, "intent": intent_view(row)}
                )
            return Outcome(200, {"duplicate": True, "intent": intent_view(row)})
        return self._validate(row, payload, epic, now)

    def _validate(self, row: Any, payload: IntentPayload, epic: str, now: datetime) -> Outcome:
        try:
            market = self.broker.market(epic)
            fx_rate = self._fx(payload, market)
        except CapitalError as error:
            reason = f"the broker could not be asked for {epic}: {error}"
            done = store.move(
                self.engine, row.id, "RECEIVED", "REJECTED", self.clock(), reason=reason
            )
            return Outcome(503, {"error": "broker_unavailable", "intent": intent_view(done)})
        violations: list[rules.Violation] = []
        order = None
        if market is None:
            field = "epic" if payload.epic else "symbol"
            violations.append(rules.Violation(field, "known_market", f"no market {epic!r}"))
        elif self.caps.allowed_epics is not None and epic not in self.caps.allowed_epics:
            violations.append(rules.Violation("epic", "allowed_epics", f"{epic} is not allowed"))
        elif payload.opens:
            order, violations = rules.validate(payload, market, now, fx_rate)
        elif market.status != "TRADEABLE":
            violations.append(
                rules.Violation("symbol", "market_open", f"{epic} is {market.status}")
            )
        if violations:
            found = [v.as_dict() for v in violations]
            reason = "; ".join(v.detail for v in violations)
            done = store.move(
                self.engine,
                row.id,
                "RECEIVED",
                "REJECTED",
                self.clock(),
                violations=found,
                reason=reason,
            )
            return Outcome(
                422, {"error": "invalid", "violations": found, "intent": intent_view(done)}
            )
        request = order_json(order) if order else {"epic": epic, "deal_id": payload.deal_id}
        intended = None if order is None else (order.level or order.reference_price)
        at = self.clock()
        done = store.move(
            self.engine,
            row.id,
            "RECEIVED",
            "VALIDATED",
            at,
            order_request=request,
            intended_level=intended,
            next_attempt_at=at,
            acknowledged_at=at,
        )
        return Outcome(202, {"intent": intent_view(done)})

    def _fx(self, payload: IntentPayload, market: rules.Market | None) -> Decimal | None:
        if market is None or payload.risk_amount is None or market.currency is None:
            return None
        account_ccy = self.broker.account_currency(payload.account)
        if account_ccy is None:
            return None
        return self.broker.fx_rate(market.currency, account_ccy)


def order_json(order: rules.Order) -> dict[str, Any]:
    def text(v: Any) -> Any:
        if isinstance(v, Decimal):
            return format(v.normalize(), "f")
        if isinstance(v, datetime):
            return v.isoformat()
        return v

    return {k: text(v) for k, v in vars(order).items() if v is not None and k != "notes"}


def order_from_json(data: dict[str, Any]) -> rules.Order:
    from datetime import datetime as dt

    values: dict[str, Any] = dict(data)
    for name in (
        "size",
        "reference_price",
        "level",
        "stop_distance",
        "stop_level",
        "profit_distance",
        "profit_level",
    ):
        if values.get(name) is not None:
            values[name] = Decimal(values[name])
    if values.get("good_till"):
        values["good_till"] = dt.fromisoformat(values["good_till"])
    return rules.Order(**values)
