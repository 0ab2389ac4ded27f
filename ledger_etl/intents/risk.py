"""Risk caps checked right before an intent is sent: pure, over the live state given to it.

- `allowed_epics`: the only markets intents may trade;
- `max_orders_per_minute`: per account, counting intents sent in the last 60 s;
- `daily_loss_cap`: realized P&L of today's confirmed intents plus the upl of the positions
  they opened, in the account currency; at or beyond the cap, nothing new is opened (positions
  opened by other means count only once closed by an intent);
- the trading governance policy (`ledger_etl.trading.policy`): per-deal rules (require_stop,
  require_guaranteed_stop, require_take_profit, max_stop_distance_pct) on the intended deal, and
  the aggregate notional and leverage limits on the exposure *with* the intended deal added.

A breach names its rule; closes and cancels reduce risk and are never capped (except by the
allowed-epics list, which is checked at intake).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from ledger_etl.trading.exposure import (
    InstrumentInput,
    PositionInput,
    aggregate,
    position_exposure,
)
from ledger_etl.trading.policy import Policy, evaluate

from .broker import Deal
from .rules import Market, Order, Violation

PENDING_DEAL = "(this intent)"


@dataclass(frozen=True)
class Caps:
    allowed_epics: frozenset[str] | None = None
    max_orders_per_minute: int | None = None
    daily_loss_cap: Decimal | None = None
    policy: Policy | None = None


@dataclass
class LiveState:
    """The account as the broker shows it now, with what our own records add."""

    account_id: str
    currency: str
    balance: Decimal | None
    deals: list[Deal]
    markets: Mapping[str, Market]  # every epic of the deals, and the intent's
    fx_rates: Mapping[str, Decimal] = field(default_factory=dict)  # currency -> account ccy
    sent_last_minute: int = 0
    realized_today: Decimal = Decimal(0)
    opened_today: set[str] = field(default_factory=set)  # deals today's intents opened


def check(
    caps: Caps, order: Order, market: Market, state: LiveState, now: datetime
) -> list[Violation]:
    out: list[Violation] = []
    if caps.allowed_epics is not None and order.epic not in caps.allowed_epics:
        out.append(Violation("epic", "allowed_epics", f"{order.epic} is not an allowed epic"))
    cap = caps.max_orders_per_minute
    if cap is not None and state.sent_last_minute >= cap:
        out.append(
            Violation(
                "account",
                "max_orders_per_minute",
                f"{state.sent_last_minute} orders sent in the last minute",
                str(cap),
            )
        )
    if caps.daily_loss_cap is not None:
        upl = sum(
            (d.upl for d in state.deals if d.upl is not None and d.deal_id in state.opened_today),
            Decimal(0),
        )
        loss = -(state.realized_today + upl)
        if loss >= caps.daily_loss_cap:
            out.append(
                Violation(
                    "account",
                    "daily_loss_cap",
                    f"today's loss {loss} has reached the cap",
                    str(caps.daily_loss_cap),
                )
            )
    if caps.policy is not None:
        out += _policy(caps.policy, order, market, state, now)
    return out


def _instrument(m: Market) -> InstrumentInput:
    """Margin is not needed by the policy rules checked here, so it is left unknown."""
    return InstrumentInput(f"CAPITAL:{m.epic}", m.asset_class, m.currency, m.lot_size, None, None)


def _policy(
    policy: Policy, order: Order, market: Market, state: LiveState, now: datetime
) -> list[Violation]:
    quotes = {e: (m.bid, m.offer, now) for e, m in state.markets.items()}
    for ccy, rate in state.fx_rates.items():
        quotes[f"{ccy}{state.currency}"] = (rate, rate, now)
    inputs = [
        PositionInput(d.deal_id, d.epic, d.direction, d.size, d.level)
        for d in state.deals
        if d.kind == "position"
    ]
    inputs.append(
        PositionInput(
            PENDING_DEAL,
            order.epic,
            order.direction,
            order.size,
            order.reference_price,
            order.stop_level,
            order.stop_distance,
        )
    )
    exposures = []
    for p in inputs:
        m = state.markets.get(p.epic)
        inst = _instrument(m) if m else None
        quote = quotes.get(p.epic)
        exposures.append(position_exposure(p, inst, quote, state.currency, quotes))
    exposure = aggregate(state.account_id, state.currency, now, exposures)
    intended = {
        "epic": order.epic,
        "level": str(order.reference_price),
        "stop_level": order.stop_level,
        "stop_distance": order.stop_distance,
        "profit_level": order.profit_level,
        "profit_distance": order.profit_distance,
        "guaranteed_stop": order.guaranteed_stop,
        "trailing_stop": order.trailing_stop,
    }
    breaches = evaluate(policy, exposure, {PENDING_DEAL: intended}, {}, state.balance)
    return [
        Violation("policy", b.rule, b.detail) for b in breaches if b.deal_id in (None, PENDING_DEAL)
    ]
