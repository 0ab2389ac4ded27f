"""Pure normalization: parsed API rows -> ledger rows. No I/O, no database.

A transaction becomes a `LedgerRow` (exact Decimal amount, ISO currency with the raw code kept,
chart-of-accounts code, flags) or a `Rejected` with the reason it cannot enter the ledger.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from ledger_etl.capital.models import Activity, Transaction
from ledger_etl.ledger.chart import ChartOfAccounts
from ledger_etl.ledger.schema import MONEY_SCALE

# Active ISO 4217 codes (and the precious-metal and SDR codes that brokers use).
ISO_CURRENCIES = frozenset(
    """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD
NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES
VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL XAU XAG XDR
""".split()
)
_DEMO_SUFFIX = re.compile(r"^([A-Z]{3})d$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_NOTE = 2000


class LedgerRow(NamedTuple):
    account_id: str
    reference: str
    posted_at: datetime
    transaction_type: str
    instrument: str | None
    amount: Decimal
    currency: str
    currency_raw: str
    status: str | None
    deal_id: str | None
    note: str | None
    ledger_account: str
    flags: str
    row_sha256: str


class ActivityRow(NamedTuple):
    account_id: str
    activity_key: str
    occurred_at: datetime
    epic: str | None
    deal_id: str | None
    source: str | None
    activity_type: str | None
    status: str | None
    deal_reference: str | None
    direction: str | None
    size: str | None
    level: str | None
    working_order_id: str | None
    actions: str
    flags: str


class Rejected(NamedTuple):
    reason: str


def normalize_currency(raw: str) -> str | None:
    """ISO code for a wire currency (`USDd` -> `USD` on demo accounts); None when unknown."""
    code = raw.strip()
    demo = _DEMO_SUFFIX.match(code)
    if demo:
        code = demo.group(1)
    return code if code in ISO_CURRENCIES else None


def canonical_amount(amount: Decimal) -> str:
    """One spelling per value: `20.0`, `20`, `20.00` all become `20`."""
    text = format(amount.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def clean_text(value: str | None, limit: int = MAX_NOTE) -> tuple[str | None, bool]:
    """Strip control characters and cap the length; (text, changed)."""
    if value is None:
        return None, False
    cleaned = _CONTROL.sub("", value)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned, cleaned != value


def normalize_transaction(
    account_id: str, tx: Transaction, chart: ChartOfAccounts
) -> LedgerRow | Rejected:
    amount = tx.size
    if not amount.is_finite():
        return Rejected(f"amount {amount} is not a finite number")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_SCALE:
        return Rejected(f"amount {amount} has more than {MONEY_SCALE} decimal places")
    if abs(amount) >= Decimal(10) ** (38 - MONEY_SCALE):
        return Rejected(f"amount {amount} is out of range")
    currency = normalize_currency(tx.currency)
    if currency is None:
        return Rejected(f"unknown currency {tx.currency!r}")
    posted_at = tx.date_utc.astimezone(UTC)
    ledger_account, known = chart.account_for(tx.transaction_type)
    flags = []
    if not known:
        flags.append("unknown_type")
    note, note_changed = clean_text(tx.note)
    if note_changed:
        flags.append("note_cleaned")
    instrument, instrument_changed = clean_text(tx.instrument_name, 128)
    if instrument_changed:
        flags.append("instrument_cleaned")
    flag_text = ",".join(flags)
    amount_text = canonical_amount(amount)
    digest = hashlib.sha256(
        "\x1f".join(
            (
                account_id,
                tx.reference,
                posted_at.isoformat(),
                tx.transaction_type,
                instrument or "",
                amount_text,
                currency,
                tx.currency,
                tx.status or "",
                tx.deal_id or "",
                note or "",
                ledger_account,
                flag_text,
            )
        ).encode("utf-8")
    ).hexdigest()
    return LedgerRow(
        account_id,
        tx.reference,
        posted_at,
        tx.transaction_type,
        instrument,
        Decimal(amount_text),
        currency,
        tx.currency,
        tx.status,
        tx.deal_id,
        note,
        ledger_account,
        flag_text,
        digest,
    )


def activity_key(natural_key: tuple[Any, ...]) -> str:
    """A fixed-width id for an activity row from the client's content key and occurrence."""
    text = "\x1f".join("" if part is None else str(part) for part in natural_key)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_activity(account_id: str, act: Activity, natural_key: tuple[Any, ...]) -> ActivityRow:
    details = act.details
    flags = [f"unknown_{name}" for name in act.unknown_enum_fields()]
    actions = ",".join(a.action_type or "" for a in details.actions) if details else ""
    return ActivityRow(
        account_id,
        activity_key(natural_key),
        act.date_utc.astimezone(UTC),
        act.epic,
        act.deal_id,
        act.source,
        act.type,
        act.status,
        details.deal_reference if details else None,
        details.direction if details else None,
        canonical_amount(details.size) if details and details.size is not None else None,
        canonical_amount(details.level) if details and details.level is not None else None,
        details.working_order_id if details else None,
        actions,
        ",".join(flags),
    )
