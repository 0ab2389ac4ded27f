"""Validation of an intent against the market's dealing rules: pure, no I/O, no clock.

Every rule that fails is reported (never only the first), each with the field, the rule and the
bound it broke, so one 422 tells the sender all there is to fix. Distances are measured from
the reference price the broker uses: the offer for a BUY at market, the bid for a SELL, the
order level for a limit or stop order. A bound given as a PERCENTAGE is a percentage of that
price; the broker rounds such bounds inwards to the instrument's tick, and so do we.

`risk_amount` sizing: size = risk / (stop distance x lot size x FX rate), rounded DOWN to the
size increment, so the loss at the stop never exceeds the amount the sender asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal, Inexact
from typing import Any

from .payload import IntentPayload

# Quotients (risk sizing) are the one division: computed wide, then cut to the increment.
_WIDE = Context(prec=50, traps=[])
_EXACT = Context(prec=50, traps=[Inexact])


@dataclass(frozen=True)
class Violation:
    field: str
    rule: str
    detail: str
    bound: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"field": self.field, "rule": self.rule, "detail": self.detail}
        if self.bound is not None:
            out["bound"] = self.bound
        return out


@dataclass(frozen=True)
class Market:
    """What validation needs of one market (from `GET /markets/{epic}`)."""

    epic: str
    currency: str | None
    lot_size: Decimal
    bid: Decimal
    offer: Decimal
    status: str | None
    tick: Decimal
    rules: dict[str, Any]
    guaranteed_stop_allowed: bool
    asset_class: str | None = None


@dataclass
class Order:
    """A validated opening request, in the broker's terms (Decimal amounts)."""

    epic: str
    direction: str
    size: Decimal
    order_type: str  # MARKET | LIMIT | STOP
    reference_price: Decimal
    level: Decimal | None = None
    stop_distance: Decimal | None = None
    stop_level: Decimal | None = None
    profit_distance: Decimal | None = None
    profit_level: Decimal | None = None
    guaranteed_stop: bool = False
    trailing_stop: bool = False
    good_till: datetime | None = None
    notes: list[str] = field(default_factory=list)

    def stop_points(self) -> Decimal | None:
        if self.stop_distance is not None:
            return self.stop_distance
        if self.stop_level is not None:
            return abs(self.reference_price - self.stop_level)
        return None


def _rule(rules: dict[str, Any], name: str) -> tuple[str, Decimal] | None:
    value = rules.get(name)
    if not isinstance(value, dict) or value.get("value") is None:
        return None
    return str(value.get("unit") or "POINTS"), Decimal(str(value["value"]))


def _points(
    rule: tuple[str, Decimal] | None, ref: Decimal, tick: Decimal, inward: str
) -> Decimal | None:
    if rule is None:
        return None
    unit, value = rule
    points = ref * value / 100 if unit == "PERCENTAGE" else value
    return points.quantize(tick, inward)


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def size_for_risk(
    risk: Decimal, stop_points: Decimal, lot_size: Decimal, fx_rate: Decimal, increment: Decimal
) -> Decimal:
    """The largest size, a multiple of `increment`, whose loss at the stop is at most `risk`."""
    per_unit = stop_points * lot_size * fx_rate
    raw = _WIDE.divide(risk, per_unit)
    steps = _WIDE.divide_int(raw, increment)
    return _EXACT.multiply(steps, increment).normalize()


def validate(
    p: IntentPayload, market: Market, now: datetime, fx_rate: Decimal | None
) -> tuple[Order | None, list[Violation]]:
    """The order `p` asks for on `market`, or every violation of the dealing rules."""
    v: list[Violation] = []
    direction = "BUY" if p.action == "buy" else "SELL"
    order_type = p.order_type.upper()
    ref = market.offer if direction == "BUY" else market.bid
    if market.status != "TRADEABLE":
        v.append(
            Violation(
                "symbol", "market_open", f"{market.epic} is {market.status or 'not tradeable'}"
            )
        )
    if order_type != "MARKET" and p.level is not None:
        ref = p.level
        below = p.level < (market.offer if direction == "BUY" else market.bid)
        if below != ((direction == "BUY") == (order_type == "LIMIT")):
            side = "below" if (direction == "BUY") == (order_type == "LIMIT") else "above"
            price = market.offer if direction == "BUY" else market.bid
            v.append(
                Violation(
                    "level",
                    "order_level",
                    f"a {direction} {order_type} must be {side} {_text(price)}",
                    _text(price),
                )
            )
    if p.good_till is not None and p.good_till <= now:
        v.append(
            Violation(
                "good_till", "good_till_future", "good_till is not in the future", now.isoformat()
            )
        )
    rules, tick = market.rules, market.tick
    if p.guaranteed_stop and not market.guaranteed_stop_allowed:
        v.append(
            Violation(
                "guaranteed_stop",
                "guaranteed_stop_allowed",
                f"guaranteed stops are not allowed on {market.epic}",
            )
        )
    if p.trailing_stop and rules.get("trailingStopsPreference") != "AVAILABLE":
        v.append(
            Violation(
                "trailing_stop",
                "trailing_stop_allowed",
                f"trailing stops are not available on {market.epic}",
            )
        )
    stop_points = _stop_points(p, ref, direction, v)
    _check_band(v, "stop", stop_points, ref, tick, rules, p.guaranteed_stop)
    profit_points = _profit_points(p, ref, direction, v)
    _check_band(v, "profit", profit_points, ref, tick, rules, False)
    size = _size(p, market, stop_points, fx_rate, v)
    if v or size is None:
        return None, v
    order = Order(
        market.epic,
        direction,
        size,
        order_type,
        ref,
        p.level,
        p.stop_distance,
        p.stop_level,
        p.profit_distance,
        p.profit_level,
        p.guaranteed_stop,
        p.trailing_stop,
        p.good_till,
    )
    return order, []


def _stop_points(p: IntentPayload, ref: Decimal, side: str, v: list[Violation]) -> Decimal | None:
    if p.stop_distance is not None:
        return p.stop_distance
    if p.stop_level is None:
        return None
    points = ref - p.stop_level if side == "BUY" else p.stop_level - ref
    if points <= 0:
        where = "below" if side == "BUY" else "above"
        v.append(
            Violation(
                "stop_level", "stop_side", f"a {side} stop must be {where} {_text(ref)}", _text(ref)
            )
        )
        return None
    return points


def _profit_points(p: IntentPayload, ref: Decimal, side: str, v: list[Violation]) -> Decimal | None:
    if p.profit_distance is not None:
        return p.profit_distance
    if p.profit_level is None:
        return None
    points = p.profit_level - ref if side == "BUY" else ref - p.profit_level
    if points <= 0:
        where = "above" if side == "BUY" else "below"
        v.append(
            Violation(
                "profit_level",
                "profit_side",
                f"a {side} limit must be {where} {_text(ref)}",
                _text(ref),
            )
        )
        return None
    return points


def _check_band(
    v: list[Violation],
    what: str,
    points: Decimal | None,
    ref: Decimal,
    tick: Decimal,
    rules: dict[str, Any],
    guaranteed: bool,
) -> None:
    if points is None:
        return
    name = "minGuaranteedStopDistance" if guaranteed else "minStopOrProfitDistance"
    low = _points(_rule(rules, name), ref, tick, ROUND_CEILING)
    high = _points(_rule(rules, "maxStopOrProfitDistance"), ref, tick, ROUND_FLOOR)
    field_name = f"{what}_distance"
    rule_low = "min_guaranteed_stop_distance" if guaranteed else f"min_{what}_distance"
    if low is not None and points < low:
        v.append(
            Violation(
                field_name,
                rule_low,
                f"{what} distance {_text(points)} is below the minimum {_text(low)}",
                _text(low),
            )
        )
    if high is not None and points > high:
        v.append(
            Violation(
                field_name,
                f"max_{what}_distance",
                f"{what} distance {_text(points)} is above the maximum {_text(high)}",
                _text(high),
            )
        )


def _size(
    p: IntentPayload,
    market: Market,
    stop_points: Decimal | None,
    fx_rate: Decimal | None,
    v: list[Violation],
) -> Decimal | None:
    rules = market.rules
    low, high = _rule(rules, "minDealSize"), _rule(rules, "maxDealSize")
    step = _rule(rules, "minSizeIncrement")
    size = p.size
    if p.risk_amount is not None:
        if stop_points is None:
            return None  # the stop's own violation says why
        if fx_rate is None:
            v.append(
                Violation(
                    "risk_amount",
                    "fx_rate",
                    f"no FX rate from {market.currency} to the account currency",
                )
            )
            return None
        increment = step[1] if step else Decimal(1)
        size = size_for_risk(p.risk_amount, stop_points, market.lot_size, fx_rate, increment)
    assert size is not None
    if low is not None and size < low[1]:
        v.append(
            Violation(
                "size",
                "min_size",
                f"size {_text(size)} is below the minimum {_text(low[1])}",
                _text(low[1]),
            )
        )
    if high is not None and size > high[1]:
        v.append(
            Violation(
                "size",
                "max_size",
                f"size {_text(size)} is above the maximum {_text(high[1])}",
                _text(high[1]),
            )
        )
    if step is not None and size % step[1] != 0:
        v.append(
            Violation(
                "size",
                "size_increment",
                f"size {_text(size)} is not a multiple of {_text(step[1])}",
                _text(step[1]),
            )
        )
    return size
