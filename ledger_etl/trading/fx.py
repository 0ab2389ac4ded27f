"""Currency conversion for exposure: the FX mid at the instant, with the rate and its source.

A rate from currency C to the account currency A is, in this order of preference:
1. 1 when C == A;
2. the mid `(bid + offer) / 2` of the market `CA` (e.g. EURUSD for EUR -> USD): exact;
3. `1 / mid` of the market `AC` (USDJPY for JPY -> USD), rounded to 20 significant digits,
   half-even: the one place a figure is rounded, because 1/x rarely has a finite decimal;
4. through USD: rate(C -> USD) x rate(USD -> A), each leg chosen as above.
The source names the market(s), the side used (mid) and when each quote was observed. No rate
means the figure stays in its own currency and the position is flagged, never guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal

INVERSE_DIGITS = 20
_INVERSE = Context(prec=INVERSE_DIGITS, rounding=ROUND_HALF_EVEN)
Quote = tuple[Decimal, Decimal, datetime]  # bid, offer, observed_at


@dataclass(frozen=True)
class FxRate:
    from_ccy: str
    to_ccy: str
    rate: Decimal
    source: str


def mid(quote: Quote) -> Decimal:
    return (quote[0] + quote[1]) / 2  # halving a finite decimal is exact


def _leg(ccy: str, to: str, quotes: Mapping[str, Quote]) -> FxRate | None:
    if ccy == to:
        return FxRate(ccy, to, Decimal(1), "same currency")
    direct = quotes.get(f"{ccy}{to}")
    if direct is not None:
        return FxRate(ccy, to, mid(direct), f"{ccy}{to} mid at {direct[2].isoformat()}")
    inverse = quotes.get(f"{to}{ccy}")
    if inverse is not None:
        rate = _INVERSE.divide(Decimal(1), mid(inverse))
        return FxRate(ccy, to, rate, f"1/{to}{ccy} mid at {inverse[2].isoformat()}")
    return None


def rate(ccy: str, account_ccy: str, quotes: Mapping[str, Quote]) -> FxRate | None:
    found = _leg(ccy, account_ccy, quotes)
    if found is not None or "USD" in (ccy, account_ccy):
        return found
    first, second = _leg(ccy, "USD", quotes), _leg("USD", account_ccy, quotes)
    if first is None or second is None:
        return None
    return FxRate(ccy, account_ccy, first.rate * second.rate, f"{first.source} x {second.source}")


def fx_epics(currencies: set[str], account_ccy: str) -> set[str]:
    """The markets that may be needed to convert `currencies` into the account currency."""
    wanted: set[str] = set()
    for ccy in currencies - {account_ccy}:
        for a, b in ((ccy, account_ccy), (ccy, "USD"), ("USD", account_ccy)):
            if a != b:
                wanted |= {f"{a}{b}", f"{b}{a}"}
    return wanted
