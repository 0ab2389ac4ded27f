"""Exposure of one account at one instant: pure arithmetic over positions, quotes and instruments.

Definitions (per position, in the instrument's currency, then converted):
- price        = bid for BUY, offer for SELL: the side the position would close on;
- notional     = size x lot size x price;
- upl          = (price - open level) x size x lot size, negated for SELL;
- margin       = notional x marginFactor / 100 when marginFactorUnit is PERCENTAGE (a factor in
                 any other unit is not guessed at: margin is null and the position flagged);
- risk_to_stop = the loss if the stop is hit, from the open level:
                 (open - stop) x size x lot size for BUY, (stop - open) x size x lot size for
                 SELL; negative when the stop locks in a profit; null (unbounded) without a stop.
                 A stop given as a distance is placed at open -/+ distance.
Every figure is multiplied by the FX rate from the instrument's currency to the account's (see
`fx.py`); the rate and its source are reported per position. Arithmetic is exact: only an
inverted FX rate is rounded (to 20 significant digits), and nothing after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import fx


@dataclass(frozen=True)
class PositionInput:
    deal_id: str
    epic: str
    direction: str
    size: Decimal
    open_level: Decimal
    stop_level: Decimal | None = None
    stop_distance: Decimal | None = None
    broker_upl: Decimal | None = None


@dataclass(frozen=True)
class InstrumentInput:
    instrument_id: str
    asset_class: str | None
    currency: str | None
    lot_size: Decimal | None
    margin_factor: Decimal | None
    margin_factor_unit: str | None


@dataclass
class PositionExposure:
    deal_id: str
    epic: str
    instrument_id: str | None
    asset_class: str | None
    currency: str | None
    direction: str
    size: Decimal
    open_level: Decimal
    price: Decimal | None = None
    fx_rate: Decimal | None = None
    fx_source: str | None = None
    notional: Decimal | None = None
    margin: Decimal | None = None
    upl: Decimal | None = None
    risk_to_stop: Decimal | None = None
    half_spread_value: Decimal | None = None  # (offer - bid) / 2 x size x lot size, converted
    flags: list[str] = field(default_factory=list)


@dataclass
class Exposure:
    account_id: str
    currency: str
    as_of: datetime
    positions: list[PositionExposure]
    totals: dict[str, Decimal]
    by_asset_class: dict[str, dict[str, Decimal]]
    by_epic: dict[str, dict[str, Decimal]]
    by_currency: dict[str, dict[str, Decimal]]
    breaches: list[dict[str, Any]] = field(default_factory=list)
    reconciliation: dict[str, Any] = field(default_factory=dict)


def stop_of(p: PositionInput) -> Decimal | None:
    if p.stop_level is not None:
        return p.stop_level
    if p.stop_distance is not None:
        return (
            p.open_level - p.stop_distance
            if p.direction == "BUY"
            else p.open_level + p.stop_distance
        )
    return None


def position_exposure(
    p: PositionInput,
    inst: InstrumentInput | None,
    quote: fx.Quote | None,
    account_ccy: str,
    quotes: Mapping[str, fx.Quote],
) -> PositionExposure:
    out = PositionExposure(
        p.deal_id,
        p.epic,
        inst.instrument_id if inst else None,
        inst.asset_class if inst else None,
        inst.currency if inst else None,
        p.direction,
        p.size,
        p.open_level,
    )
    if inst is None:
        out.flags.append("unknown_instrument: no market details for this epic")
        return out
    if quote is None:
        out.flags.append("no_price: no quote at or before the instant")
        return out
    if inst.lot_size is None or inst.currency is None:
        out.flags.append("incomplete_instrument: lot size or currency missing")
        return out
    sign = 1 if p.direction == "BUY" else -1
    price = quote[0] if p.direction == "BUY" else quote[1]
    out.price = price
    units = p.size * inst.lot_size
    notional = units * price
    upl = (price - p.open_level) * units * sign
    margin = None
    if inst.margin_factor is not None and inst.margin_factor_unit == "PERCENTAGE":
        margin = notional * inst.margin_factor / 100
    else:
        out.flags.append(f"margin_unknown: marginFactorUnit {inst.margin_factor_unit!r}")
    stop = stop_of(p)
    risk = None if stop is None else (p.open_level - stop) * units * sign
    rate = fx.rate(inst.currency, account_ccy, quotes)
    if rate is None:
        out.flags.append(f"no_fx_rate: {inst.currency} -> {account_ccy}")
        return out
    out.fx_rate, out.fx_source = rate.rate, rate.source
    out.notional = notional * rate.rate
    out.upl = upl * rate.rate
    out.margin = None if margin is None else margin * rate.rate
    out.risk_to_stop = None if risk is None else risk * rate.rate
    out.half_spread_value = (quote[1] - quote[0]) / 2 * units * rate.rate
    return out


_FIGURES = ("notional", "margin", "upl")


def _add(bucket: dict[str, Decimal], p: PositionExposure) -> None:
    for name in _FIGURES:
        value = getattr(p, name)
        if value is not None:
            bucket[name] = bucket.get(name, Decimal(0)) + value
    bucket["positions"] = bucket.get("positions", Decimal(0)) + 1


def aggregate(
    account_id: str, currency: str, as_of: datetime, positions: list[PositionExposure]
) -> Exposure:
    totals: dict[str, Decimal] = {name: Decimal(0) for name in _FIGURES}
    by_class: dict[str, dict[str, Decimal]] = {}
    by_epic: dict[str, dict[str, Decimal]] = {}
    by_ccy: dict[str, dict[str, Decimal]] = {}
    for p in positions:
        for name in _FIGURES:
            value = getattr(p, name)
            if value is not None:
                totals[name] += value
        _add(by_class.setdefault(p.asset_class or "UNKNOWN", {}), p)
        _add(by_epic.setdefault(p.epic, {}), p)
        _add(by_ccy.setdefault(p.currency or "UNKNOWN", {}), p)
    return Exposure(account_id, currency, as_of, positions, totals, by_class, by_epic, by_ccy)


def reconcile(
    exposure: Exposure,
    broker_total_upl: Decimal | None,
    broker_upl: Mapping[str, Decimal | None],
) -> dict[str, Any]:
    """Our upl against the broker's, per position and in total.

    Tolerance per position: half the spread x size x lot size (converted), because the broker
    may mark at the mid while we mark at the closing side, plus 0.01 for its rounding to cents.
    """
    rows, total_tol, mismatches = [], Decimal(0), []
    for p in exposure.positions:
        theirs = broker_upl.get(p.deal_id)
        if theirs is None or p.upl is None or p.half_spread_value is None:
            continue
        tolerance = p.half_spread_value + Decimal("0.01")
        diff = p.upl - theirs
        total_tol += tolerance
        rows.append(p.deal_id)
        if abs(diff) > tolerance:
            mismatches.append(
                {
                    "deal_id": p.deal_id,
                    "ours": str(p.upl),
                    "broker": str(theirs),
                    "difference": str(diff),
                    "tolerance": str(tolerance),
                }
            )
    result: dict[str, Any] = {"positions_checked": len(rows), "mismatches": mismatches}
    if broker_total_upl is not None:
        diff = exposure.totals["upl"] - broker_total_upl
        result.update(
            account_upl_broker=str(broker_total_upl),
            account_upl_difference=str(diff),
            account_tolerance=str(total_tol + Decimal("0.01")),
            account_within_tolerance=abs(diff) <= total_tol + Decimal("0.01"),
        )
    return result
