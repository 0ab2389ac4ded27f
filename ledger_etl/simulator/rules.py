"""The dealing rules: what a position or working order request must satisfy, and the errorCode
of each breach. Pure functions of the request, the instrument and a reference price.

The table of rules, answers and sources is in docs/simulator-dealing.md.

A stop's band is measured from the reference price (the opening side for a new position, the
closing side for an open one, the order level for a working order): between
minStopOrProfitDistance (minGuaranteedStopDistance for a guaranteed stop) and
maxStopOrProfitDistance, both a percentage of that price; bounds are rounded inwards to the
instrument's decimals and quoted in the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from ledger_etl.simulator.catalog import INSTRUMENTS, Instrument
from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.wire import parse_request_datetime

STOP_FIELDS = ("stopLevel", "stopDistance", "stopAmount")
PROFIT_FIELDS = ("profitLevel", "profitDistance", "profitAmount")


@dataclass
class Protection:
    """Validated stop and profit of a deal: levels (positions) or distances (orders)."""

    stop_level: Decimal | None = None
    profit_level: Decimal | None = None
    guaranteed_stop: bool = False
    trailing_stop: bool = False

    def distances(self, ref: Decimal) -> tuple[Decimal | None, Decimal | None]:
        stop = abs(ref - self.stop_level) if self.stop_level is not None else None
        profit = abs(self.profit_level - ref) if self.profit_level is not None else None
        return stop, profit

    def as_stops(self) -> dict[str, Any]:
        return {
            "stopLevel": self.stop_level,
            "profitLevel": self.profit_level,
            "guaranteedStop": self.guaranteed_stop,
            "trailingStop": self.trailing_stop,
        }


def number(body: dict[str, Any], key: str, code: str) -> Decimal | None:
    """A JSON number as an exact Decimal; None when absent or null."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError(400, code)
    result = Decimal(str(value))
    if not result.is_finite():
        raise ApiError(400, code)
    return result


def flag(body: dict[str, Any], key: str, code: str, default: bool = False) -> bool:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ApiError(400, code)
    return value


def epic(body: dict[str, Any]) -> Instrument:
    value = body.get("epic")
    if not isinstance(value, str) or value not in INSTRUMENTS:
        raise ApiError(400, "error.invalid.epic")
    return INSTRUMENTS[value]


def direction(body: dict[str, Any]) -> str:
    value = body.get("direction")
    if value not in ("BUY", "SELL"):
        raise ApiError(400, "error.invalid.direction")
    return str(value)


def size(body: dict[str, Any], inst: Instrument) -> tuple[Decimal, bool]:
    """(size, below the minimum): a size under minDealSize is a rejection, not a 400."""
    value = number(body, "size", "error.invalid.size")
    if value is None or value <= 0:
        raise ApiError(400, "error.invalid.size")
    if value > inst.max_deal_size:
        raise ApiError(400, f"error.invalid.size.maxvalue: {_text(inst.max_deal_size)}")
    if value < inst.min_deal_size:
        return value, True
    if value % inst.min_size_increment != 0:
        raise ApiError(400, "error.invalid.size")
    return value, False


def good_till(body: dict[str, Any], now: datetime) -> datetime | None:
    raw = body.get("goodTillDate")
    if raw is None:
        return None
    parsed = parse_request_datetime(raw) if isinstance(raw, str) else None
    if parsed is None:
        raise ApiError(400, "error.invalid.goodTillDate")
    if parsed <= now:
        raise ApiError(400, "error.not-in-future.goodTillDate")
    return parsed


def order_level(body: dict[str, Any], side: str, order_type: str, bid: Decimal, ask: Decimal
                ) -> Decimal:  # fmt: skip
    """A LIMIT buys below the offer and sells above the bid; a STOP the other way round."""
    level = number(body, "level", "error.invalid.level")
    if level is None or level <= 0:
        raise ApiError(400, "error.invalid.level")
    price = ask if side == "BUY" else bid
    below = level < price
    if below != ((side == "BUY") == (order_type == "LIMIT")):
        raise ApiError(400, "error.invalid.level")
    return level


def protection(
    body: dict[str, Any], inst: Instrument, side: str, ref: Decimal, units: Decimal,
    per_unit_fx: Decimal, *, hedging: bool, current: Protection | None = None,
) -> Protection:  # fmt: skip
    """Validate the stop/profit fields against the band around `ref`. `units` x `per_unit_fx`
    turns a price move into account currency (for stopAmount/profitAmount). With `current`
    (an amendment), absent fields keep their value and explicit nulls remove it."""
    out = Protection(**vars(current)) if current is not None else Protection()
    out.guaranteed_stop = flag(body, "guaranteedStop", "error.invalid.guaranteedStop",
                               out.guaranteed_stop)  # fmt: skip
    out.trailing_stop = flag(body, "trailingStop", "error.invalid.trailingStop", out.trailing_stop)
    sign = Decimal(1) if side == "BUY" else Decimal(-1)
    stop = _level(body, STOP_FIELDS, "error.validation.stop.price", ref, -sign, units, per_unit_fx)
    profit = _level(body, PROFIT_FIELDS, "error.validation.limit.price", ref, sign, units,
                    per_unit_fx)  # fmt: skip
    if stop is not _KEEP:
        out.stop_level = None if stop is None else rounded(stop, inst)
    if profit is not _KEEP:
        out.profit_level = None if profit is None else rounded(profit, inst)
    if out.guaranteed_stop:
        if out.stop_level is None:
            raise ApiError(400, "error.vallidation.guaranteed-stop-loss.required")
        if not inst.guaranteed_stop_allowed or out.trailing_stop:
            raise ApiError(400, "error.invalid.guaranteedStop")
        if hedging:
            raise ApiError(400, "error.invalid.guaranteedStop.hedging")
    if out.trailing_stop and (body.get("stopDistance") is None or not inst.trailing_stops):
        if current is None or not current.trailing_stop:
            raise ApiError(400, "error.invalid.trailingStop")
    gsl_pct = inst.min_guaranteed_stop_pct if out.guaranteed_stop else inst.min_stop_pct
    if stop is not _KEEP and out.stop_level is not None:
        _check_band(out.stop_level, ref, -sign, gsl_pct, inst, "error.invalid.stoploss")
    if profit is not _KEEP and out.profit_level is not None:
        _check_band(
            out.profit_level, ref, sign, inst.min_stop_pct, inst, "error.invalid.takeprofit"
        )
    return out


_KEEP: Any = object()


def _level(
    body: dict[str, Any], keys: tuple[str, str, str], code: str, ref: Decimal, toward: Decimal,
    units: Decimal, per_unit_fx: Decimal,
) -> Any:  # fmt: skip
    """The level the fields ask for: None to remove, _KEEP when none of them is present."""
    present = [k for k in keys if k in body]
    given = [k for k in present if body[k] is not None]
    if not present:
        return _KEEP
    if not given:
        return None
    if len(given) > 1:
        raise ApiError(400, code)
    value = number(body, given[0], code)
    assert value is not None
    if value <= 0:
        raise ApiError(400, code)
    if given[0].endswith("Level"):
        return value
    distance = value if given[0].endswith("Distance") else value / (units * per_unit_fx)
    return ref + toward * distance


def _check_band(level: Decimal, ref: Decimal, toward: Decimal, min_pct: Decimal,
                inst: Instrument, code: str) -> None:  # fmt: skip
    tick = inst.tick_size
    near, far = ref * min_pct / 100, ref * inst.max_stop_pct / 100
    if toward > 0:
        lo, hi = ref + near, ref + far
    else:
        lo, hi = ref - far, ref - near
    lo, hi = lo.quantize(tick, ROUND_CEILING), hi.quantize(tick, ROUND_FLOOR)
    if level < lo:
        raise ApiError(400, f"{code}.minvalue: {_text(lo)}")
    if level > hi:
        raise ApiError(400, f"{code}.maxvalue: {_text(hi)}")


def rounded(level: Decimal, inst: Instrument) -> Decimal:
    return level.quantize(inst.tick_size, ROUND_HALF_EVEN)


def _text(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return text
