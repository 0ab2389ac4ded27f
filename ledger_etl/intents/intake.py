"""Intake: one delivery becomes a stored intent, validated, before any answer goes back.

Order of work, and why:
1. the symbol is mapped to an epic (the user's symbol map, then the instrument master's
   TRADINGVIEW ids, then the part after the exchange prefix: `FX:EURUSD` -> `EURUSD`);
2. when the market's rules are cached, the request is judged at once against them and the
   allowed-epics list, and the intent is stored under its idempotency key already judged, in one
   transaction (RECEIVED and then VALIDATED or REJECTED, both in the change log): the answer
   waits for that commit only. Otherwise it is stored RECEIVED *first*, before the broker is
   asked for the rules, and moved once they are known;
3. either way, a repeat of the key, concurrent or later, finds the stored row and is answered
   with its state, sending nothing; a different payload under a known key is a 409;
4. a violation is returned with every other one (422) and the intent is REJECTED; otherwise it
   is VALIDATED: queued for the executor, and the sender gets 202 at once.
"""

from __future__ import annotations

import json
import time
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
from .broker import Broker, NotCached
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


INSTRUMENTS_CACHE_S = 60.0


def tradingview_ids(engine: Engine) -> dict[str, str]:
    """TRADINGVIEW symbol -> epic, from the instrument master."""
    with store.connect(engine) as conn:
        return {
            ids["TRADINGVIEW"]: str(row.epic)
            for row in trading_store.current_instruments(conn)
            if (ids := row.external_ids or {}).get("TRADINGVIEW")
        }


def resolve_epic(
    engine: Engine,
    payload: IntentPayload,
    symbol_map: dict[str, str],
    master: dict[str, str] | None = None,
) -> str:
    if payload.epic is not None:
        return payload.epic
    symbol = payload.symbol or ""
    if symbol in symbol_map:
        return symbol_map[symbol]
    known = tradingview_ids(engine) if master is None else master
    if symbol in known:
        return known[symbol]
    return symbol.rsplit(":", 1)[-1]


@dataclass(frozen=True)
class Judgement:
    """What the rules made of a received intent: its next state, the values to store with it
    and the answer's status."""

    state: str  # VALIDATED | REJECTED
    at: datetime
    values: dict[str, Any]
    status: int  # 202 | 422

    def answer(self, row: Any) -> Outcome:
        if self.status == 202:
            return Outcome(202, {"intent": intent_view(row)})
        found = self.values["violations"]
        return Outcome(422, {"error": "invalid", "violations": found, "intent": intent_view(row)})


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
        self._master: tuple[float, dict[str, str]] | None = None

    def _epic(self, payload: IntentPayload) -> str:
        master = None
        if payload.epic is None and (payload.symbol or "") not in self.symbol_map:
            now = time.monotonic()
            if self._master is None or now - self._master[0] >= INSTRUMENTS_CACHE_S:
                self._master = (now, tradingview_ids(self.engine))
            master = self._master[1]
        return resolve_epic(self.engine, payload, self.symbol_map, master)

    def receive(self, payload: IntentPayload, now: datetime) -> Outcome:
        """Store and judge the intent. When its market's rules are at hand (cached), both go
        into one transaction and the broker is not asked; otherwise the intent is stored
        RECEIVED first, and only then is the broker asked for the rules."""
        key, digest = idempotency_key(payload), canonical_hash(payload)
        epic = self._epic(payload)
        fields = {
            "account_id": payload.account,
            "key": key,
            "payload_sha256": digest,
            "payload": stored_payload(payload),
            "epic": epic,
            "action": payload.action,
            "mode": self.mode,
            "at": now,
        }
        judged = self._judge_cached(payload, epic, now)
        if judged is not None:
            outcome = (judged.state, judged.at, judged.values)
            created = store.record(self.engine, **fields, outcome=outcome)
            if not created.created:
                return _repeat(created.row, digest)
            return judged.answer(created.row)
        created = store.create(self.engine, **fields)
        row = created.row
        if not created.created:
            return _repeat(row, digest)
        try:
            judged = self._judge(payload, epic, now)
        except CapitalError as error:
            reason = f"the broker could not be asked for {epic}: {error}"
            done = store.move(
                self.engine, row.id, "RECEIVED", "REJECTED", self.clock(), reason=reason
            )
            return Outcome(503, {"error": "broker_unavailable", "intent": intent_view(done)})
        done = store.move(self.engine, row.id, "RECEIVED", judged.state, judged.at, **judged.values)
        return judged.answer(done)

    def _judge_cached(self, payload: IntentPayload, epic: str, now: datetime) -> Judgement | None:
        cache_only = getattr(self.broker, "cache_only", None)
        if cache_only is None:
            return None
        try:
            with cache_only():
                return self._judge(payload, epic, now)
        except NotCached:
            return None

    def _judge(self, payload: IntentPayload, epic: str, now: datetime) -> Judgement:
        market = self.broker.market(epic)
        fx_rate = self._fx(payload, market)
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
        at = self.clock()
        if violations:
            found = [v.as_dict() for v in violations]
            reason = "; ".join(v.detail for v in violations)
            return Judgement("REJECTED", at, {"violations": found, "reason": reason}, 422)
        request = order_json(order) if order else {"epic": epic, "deal_id": payload.deal_id}
        intended = None if order is None else (order.level or order.reference_price)
        values = {
            "order_request": request,
            "intended_level": intended,
            "next_attempt_at": at,
            "acknowledged_at": at,
        }
        return Judgement("VALIDATED", at, values, 202)

    def _fx(self, payload: IntentPayload, market: rules.Market | None) -> Decimal | None:
        if market is None or payload.risk_amount is None or market.currency is None:
            return None
        account_ccy = self.broker.account_currency(payload.account)
        if account_ccy is None:
            return None
        return self.broker.fx_rate(market.currency, account_ccy)


def _repeat(row: Any, digest: str) -> Outcome:
    """A repeated delivery: the stored state (200), or 409 when the payload differs."""
    if row.payload_sha256 != digest:
        detail = "this alert_id was already used for a different payload"
        return Outcome(409, {"error": "conflict", "detail": detail, "intent": intent_view(row)})
    return Outcome(200, {"duplicate": True, "intent": intent_view(row)})


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
