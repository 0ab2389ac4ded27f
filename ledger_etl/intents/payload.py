"""The trade-intent payload: what an alert (TradingView or any sender) posts to `/intents`.

Amounts are exact Decimal: the body is decoded with `parse_float=Decimal`, and a number sent as
a string (`"1.085"`, which a quoted TradingView placeholder produces) is read the same way. An
unknown field is refused with its name, so a misspelt `stop_distnce` never becomes an order
without a stop. The published JSON Schema (`payload_schema`) is generated from this model.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_ID = "https://ledger-etl.invalid/schemas/trade-intent.json"
KEY_FIELDS_EXCLUDED = ("secret",)  # never part of the stored payload or its hash

PositiveAmount = Decimal


class IntentPayload(BaseModel):
    """One alert turned into one dealing request (or a close / cancel of existing deals)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="TradeIntent")

    secret: str = Field(min_length=1, description="The shared secret (LEDGER_INTENTS_SECRET).")
    alert_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="Idempotency key. Absent: the sha256 of the canonical payload is the key.",
    )
    account: str = Field(min_length=1, max_length=64, description="The broker account id.")
    symbol: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A charting symbol (FX:EURUSD) mapped to an epic; give this or `epic`.",
    )
    epic: str | None = Field(default=None, min_length=1, max_length=64)
    action: Literal["buy", "sell", "close", "cancel"]
    order_type: Literal["market", "limit", "stop"] = "market"
    size: Decimal | None = Field(default=None, gt=0)
    risk_amount: Decimal | None = Field(
        default=None,
        gt=0,
        description="Account-currency loss at the stop; the size is derived from it.",
    )
    level: Decimal | None = Field(default=None, gt=0, description="Limit or stop order level.")
    stop_distance: Decimal | None = Field(default=None, gt=0)
    stop_level: Decimal | None = Field(default=None, gt=0)
    profit_distance: Decimal | None = Field(default=None, gt=0)
    profit_level: Decimal | None = Field(default=None, gt=0)
    guaranteed_stop: bool = False
    trailing_stop: bool = False
    good_till: datetime | None = Field(
        default=None, description="UTC expiry of a limit or stop order (ISO 8601)."
    )
    deal_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="close/cancel: only this deal."
    )

    @field_validator("good_till")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _consistent(self) -> IntentPayload:
        problems = shape_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def opens(self) -> bool:
        return self.action in ("buy", "sell")


def shape_problems(p: IntentPayload) -> list[str]:
    """Rules about the fields themselves (not the market): every one that fails."""
    out: list[str] = []
    if (p.symbol is None) == (p.epic is None):
        out.append("give exactly one of symbol and epic")
    for a, b in (("stop_distance", "stop_level"), ("profit_distance", "profit_level")):
        if getattr(p, a) is not None and getattr(p, b) is not None:
            out.append(f"give at most one of {a} and {b}")
    if p.opens:
        if (p.size is None) == (p.risk_amount is None):
            out.append("give exactly one of size and risk_amount")
        if p.risk_amount is not None and p.stop_distance is None and p.stop_level is None:
            out.append("risk_amount needs stop_distance or stop_level")
        if p.order_type != "market" and p.level is None:
            out.append(f"a {p.order_type} order needs level")
        if p.order_type == "market" and p.level is not None:
            out.append("a market order takes no level")
        if p.order_type == "market" and p.good_till is not None:
            out.append("good_till applies to limit and stop orders only")
        if p.trailing_stop and p.stop_distance is None:
            out.append("trailing_stop needs stop_distance")
        if p.guaranteed_stop and p.trailing_stop:
            out.append("guaranteed_stop and trailing_stop cannot both be set")
        if p.guaranteed_stop and p.stop_distance is None and p.stop_level is None:
            out.append("guaranteed_stop needs a stop")
        if p.deal_id is not None:
            out.append("deal_id applies to close and cancel only")
    else:
        for name in (
            "size",
            "risk_amount",
            "level",
            "stop_distance",
            "stop_level",
            "profit_distance",
            "profit_level",
            "good_till",
        ):
            if getattr(p, name) is not None:
                out.append(f"{p.action} takes no {name}")
    return out


def stored_payload(p: IntentPayload) -> dict[str, Any]:
    """The payload as stored: the secret removed, amounts as exact text, unset keys dropped."""
    data = p.model_dump(exclude=set(KEY_FIELDS_EXCLUDED), exclude_none=True)
    return json.loads(json.dumps(data, default=_text, sort_keys=True))


def _text(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(type(value).__name__)


def canonical_hash(p: IntentPayload) -> str:
    """sha256 of the stored payload without `alert_id`, keys sorted, numbers normalized: the
    same alert re-sent with `1.50` or `1.5` hashes the same."""
    data = stored_payload(p)
    data.pop("alert_id", None)
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def idempotency_key(p: IntentPayload) -> str:
    """`alert:<alert_id>`, or `sha256:<hash of the canonical payload>` without an alert id."""
    return f"alert:{p.alert_id}" if p.alert_id is not None else f"sha256:{canonical_hash(p)}"


def payload_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of the payload, as published at `/intents/schema`."""
    schema = IntentPayload.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["description"] = (
        "A trade intent. Cross-field rules (one of symbol/epic, one of size/risk_amount, a "
        "level for limit and stop orders...) are checked by the service and answered with 422."
    )
    for name in (
        "size",
        "risk_amount",
        "level",
        "stop_distance",
        "stop_level",
        "profit_distance",
        "profit_level",
    ):
        _numeric(schema["properties"][name])
    return schema


def _numeric(prop: dict[str, Any]) -> None:
    """Pydantic describes a Decimal as number-or-string; keep both but state the bound."""
    for option in prop.get("anyOf", []):
        if option.get("type") == "number":
            option["exclusiveMinimum"] = 0
        if option.get("type") == "string":
            option["pattern"] = r"^\d+(\.\d+)?$"
