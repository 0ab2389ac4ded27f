"""Pure normalization: parsed API rows -> ledger rows. No I/O, no database.

A transaction becomes a `LedgerRow` (exact Decimal amount, ISO currency with the raw code kept,
chart-of-accounts code, flags) and an activity an `ActivityRow`, or either a `Rejected` with the
reason it cannot enter the ledger. Both run in `MONEY_CONTEXT`, so a number that cannot be held
exactly is a rejection with a reason, never an exception that stops the sync.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from decimal import (
    Context,
    Decimal,
    DecimalException,
    Inexact,
    Overflow,
    Rounded,
    localcontext,
)
from hashlib import sha256
from typing import Any, NamedTuple

from ledger_etl.capital.models import Activity, Transaction
from ledger_etl.ledger.chart import ChartOfAccounts
from ledger_etl.ledger.schema import MONEY_SCALE, activities, ledger_entries

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
CURRENCY_MISMATCH = "currency_mismatch"  # the reason prefix statements count
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


# A feed uses a handful of currency spellings: remember their normalization (bounded).
_CURRENCY_CACHE: dict[str, str | None] = {}
_CURRENCY_CACHE_SIZE = 1024


def _currency(raw: str) -> str | None:
    try:
        return _CURRENCY_CACHE[raw]
    except KeyError:
        code = normalize_currency(raw)
        if len(_CURRENCY_CACHE) < _CURRENCY_CACHE_SIZE:
            _CURRENCY_CACHE[raw] = code
        return code


# Wide enough for any NUMERIC(38, 8) value and its intermediate spellings; a result that would
# be rounded or overflow raises instead, so money is never silently changed.
MONEY_CONTEXT = Context(prec=80, Emax=99, Emin=-99, traps=[Inexact, Rounded, Overflow])


def canonical_amount(amount: Decimal) -> str:
    """One spelling per value: `20.0`, `20`, `20.00` all become `20` (exact, any caller)."""
    with localcontext(MONEY_CONTEXT):
        return _canonical(amount)


def _canonical(amount: Decimal) -> str:
    # Only inside MONEY_CONTEXT (normalization enters it once per row): in a narrower context
    # `normalize()` would round a long amount.
    text = format(amount.normalize(), "f")
    return "0" if text in ("-0", "0") else text


def storable_json(text: str) -> str:
    """JSON text that every backend stores alike: a lone surrogate or a literal NUL (possible
    only in text re-encoded from a decoded row) becomes its JSON escape, the same JSON value."""
    if text.isascii() and "\x00" not in text:
        return text  # the common case, checked without encoding
    if "\x00" not in text:
        try:
            text.encode("utf-8")
            return text
        except UnicodeEncodeError:
            pass
    return "".join(
        f"\\u{ord(char):04x}" if char == "\x00" or "\ud800" <= char <= "\udfff" else char
        for char in text
    )


def clean_text(value: str | None, limit: int = MAX_NOTE) -> tuple[str | None, bool]:
    """Strip control characters and cap the length; (text, changed)."""
    if value is None:
        return None, False
    if len(value) <= limit and value.isprintable():
        return value, False  # nothing to strip (control characters are never printable)
    cleaned = _CONTROL.sub("", value)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned, cleaned != value


_MAX_AMOUNT = Decimal(10) ** (38 - MONEY_SCALE)
_MIN_AMOUNT = -_MAX_AMOUNT
_ZERO = Decimal(0)
_new_tuple = tuple.__new__
_SEPARATOR = "\x1f"


def _column_limits(table: Any, names: tuple[str, ...]) -> tuple[int | None, ...]:
    return tuple(getattr(table.c[name].type, "length", None) for name in names)


# Text columns with a length limit: PostgreSQL refuses a longer value where SQLite keeps it, so a
# longer field is a rejection on both. (name, limit) in the order `_unstorable_text` is given.
_TX_TEXT = ("reference", "status", "deal_id", "transaction_type", "currency_raw")
_TX_LIMITS = _column_limits(ledger_entries, _TX_TEXT)
_ACT_TEXT = (
    "epic", "deal_id", "source", "activity_type", "status", "deal_reference", "direction",
    "working_order_id", "actions",
)  # fmt: skip
_ACT_LIMITS = _column_limits(activities, _ACT_TEXT)


def _too_long(
    values: tuple[str | None, ...], names: tuple[str, ...], limits: tuple[int | None, ...]
) -> str | None:
    for value, name, limit in zip(values, names, limits, strict=False):
        if value is not None and limit is not None and len(value) > limit:
            return f"text_too_long: {name} has {len(value)} characters, at most {limit} fit"
    return None


def _unstorable_text(values: tuple[str | None, ...], nul_checked: int) -> str | None:
    """Why a text field cannot be stored alike on every backend: NUL, or a lone surrogate.

    PostgreSQL refuses NUL in text where SQLite keeps it; the first `nul_checked` fields are
    checked for it (later ones, free text, have control characters stripped instead).
    """
    for index, value in enumerate(values):
        if value is None:
            continue
        if index < nul_checked and "\x00" in value:
            return "text_nul: a text field holds a NUL character"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text_surrogate: a text field holds a lone UTF-16 surrogate"
    return None


def normalize_transaction(
    account_id: str,
    tx: Transaction,
    chart: ChartOfAccounts,
    account_currency: str | None = None,
) -> LedgerRow | Rejected:
    """One transaction as a ledger row, or the reason it cannot be one (never raises on money).

    `account_currency` is the account's ISO currency when known: an entry in another currency
    cannot be added to the account's balance, so it is rejected (`currency_mismatch`).
    """
    try:
        return _normalize_transaction(account_id, tx, chart, account_currency)
    except DecimalException as error:
        return Rejected(f"amount_unrepresentable: {type(error).__name__}")


_REFERENCE_MAX, _STATUS_MAX, _DEAL_ID_MAX, _TYPE_MAX, _CURRENCY_RAW_MAX = _TX_LIMITS
# The transaction path's own copy of MONEY_CONTEXT (a context records the signals it saw).
_ROW_CONTEXT = MONEY_CONTEXT.copy()


def _normalize_transaction(
    account_id: str, tx: Transaction, chart: ChartOfAccounts, account_currency: str | None
) -> LedgerRow | Rejected:
    """One transaction as a ledger row, or the reason it cannot be one.

    This runs once per stored row (a million in a large backfill), so it reads each field once,
    checks the common case (ASCII text of plausible length) first and builds the row without
    intermediate objects. The only Decimal operation that depends on a context, `normalize()`,
    is given `MONEY_CONTEXT` explicitly (no context switch per row). `row_sha256` is over the
    normalized fields in a fixed spelling, so a stored row compares equal across versions of
    this code.
    """
    reference = tx.reference
    status = tx.status
    deal_id = tx.deal_id
    transaction_type = tx.transaction_type
    currency_raw = tx.currency
    note = tx.note
    instrument = tx.instrument_name
    # ASCII text (isascii() is a flag test) holds no lone surrogate; NUL is refused in the
    # identifier fields only (free text has control characters stripped below).
    if not (
        reference.isascii()
        and (status is None or status.isascii())
        and (deal_id is None or deal_id.isascii())
        and transaction_type.isascii()
        and currency_raw.isascii()
        and (note is None or note.isascii())
        and (instrument is None or instrument.isascii())
        and "\x00" not in f"{reference}{status}{deal_id}{transaction_type}{currency_raw}"
    ):
        bad_text = _unstorable_text(
            (reference, status, deal_id, transaction_type, currency_raw, note, instrument), 5
        )
        if bad_text is not None:
            return Rejected(bad_text)
    if (
        len(reference) > _REFERENCE_MAX  # type: ignore[operator]
        or (status is not None and len(status) > _STATUS_MAX)  # type: ignore[operator]
        or (deal_id is not None and len(deal_id) > _DEAL_ID_MAX)  # type: ignore[operator]
        or len(transaction_type) > _TYPE_MAX  # type: ignore[operator]
        or len(currency_raw) > _CURRENCY_RAW_MAX  # type: ignore[operator]
    ):
        return Rejected(
            _too_long(  # type: ignore[arg-type]
                (reference, status, deal_id, transaction_type, currency_raw), _TX_TEXT, _TX_LIMITS
            )
        )
    amount = tx.size
    if not amount.is_finite():
        return Rejected(f"amount {amount} is not a finite number")
    # `normal` has no trailing zeros, so its fixed-point spelling shows its exponent: more than
    # MONEY_SCALE digits after the point means an exponent below -MONEY_SCALE.
    normal = amount.normalize(_ROW_CONTEXT)
    text = format(normal, "f")
    point = text.find(".")
    if point >= 0 and len(text) - point - 1 > MONEY_SCALE:
        return Rejected(f"amount {amount} has more than {MONEY_SCALE} decimal places")
    if not _MIN_AMOUNT < amount < _MAX_AMOUNT:
        return Rejected(f"amount {amount} is out of range")
    try:
        currency = _CURRENCY_CACHE[currency_raw]
    except KeyError:
        currency = _currency(currency_raw)
    if currency is None:
        return Rejected(f"unknown currency {currency_raw!r}")
    if account_currency is not None and currency != account_currency:
        return Rejected(f"{CURRENCY_MISMATCH}: entry in {currency}, account in {account_currency}")
    posted_at = tx.date_utc
    if posted_at.tzinfo is not UTC:
        posted_at = posted_at.astimezone(UTC)
    ledger_account, known = chart.account_for(transaction_type)
    flag_text = "" if known else "unknown_type"
    if note is not None and (len(note) > MAX_NOTE or not note.isprintable()):
        note, note_changed = clean_text(note)
        if note_changed:
            flag_text = f"{flag_text},note_cleaned" if flag_text else "note_cleaned"
    if instrument is not None and (len(instrument) > 128 or not instrument.isprintable()):
        instrument, instrument_changed = clean_text(instrument, 128)
        if instrument_changed:
            flag_text = f"{flag_text},instrument_cleaned" if flag_text else "instrument_cleaned"
    if text == "0" or text == "-0":
        text, value = "0", _ZERO
    elif point < 0 and text[-1] == "0":  # normalize() made 20 into 2E+1: keep it plain
        value = Decimal(text)
    else:
        value = normal
    digest = sha256(
        _SEPARATOR.join(
            (
                account_id, reference, posted_at.isoformat(), transaction_type,
                instrument or "", text, currency, currency_raw, status or "", deal_id or "",
                note or "", ledger_account, flag_text,
            )
        ).encode()
    ).hexdigest()  # fmt: skip
    return _new_tuple(  # type: ignore[no-any-return]
        LedgerRow,
        (
            account_id, reference, posted_at, transaction_type, instrument, value, currency,
            currency_raw, status, deal_id, note, ledger_account, flag_text, digest,
        ),
    )  # fmt: skip


def activity_key(natural_key: tuple[Any, ...]) -> str:
    """A fixed-width id for an activity row from the client's content key and occurrence."""
    text = "\x1f".join("" if part is None else str(part) for part in natural_key)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_activity(
    account_id: str, act: Activity, natural_key: tuple[Any, ...]
) -> ActivityRow | Rejected:
    """One activity row, or the reason it cannot be stored (never raises on money or text)."""
    try:
        with localcontext(MONEY_CONTEXT):
            return _normalize_activity(account_id, act, natural_key)
    except DecimalException as error:
        return Rejected(f"amount_unrepresentable: {type(error).__name__}")


def _normalize_activity(
    account_id: str, act: Activity, natural_key: tuple[Any, ...]
) -> ActivityRow | Rejected:
    details = act.details
    actions = ",".join(a.action_type or "" for a in details.actions) if details else ""
    text = (
        act.epic, act.deal_id, act.source, act.type, act.status,
        details.deal_reference if details else None, details.direction if details else None,
        details.working_order_id if details else None, actions,
    )  # fmt: skip
    # Every activity field is an identifier or code, none is free text: NUL is refused in all.
    reason = _unstorable_text(text, len(text)) or _too_long(text, _ACT_TEXT, _ACT_LIMITS)
    if reason is not None:
        return Rejected(reason)
    flags = [f"unknown_{name}" for name in act.unknown_enum_fields()]
    size = details.size if details else None
    level = details.level if details else None
    return ActivityRow(
        account_id,
        activity_key(natural_key),
        act.date_utc.astimezone(UTC),
        *text[:7],
        _canonical(size) if size is not None else None,
        _canonical(level) if level is not None else None,
        text[7],
        actions,
        ",".join(flags),
    )
