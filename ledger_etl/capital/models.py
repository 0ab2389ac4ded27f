"""Payload models: exact Decimal amounts, UTC-aware datetimes, unknown keys kept.

Bodies are decoded with `json.loads(raw, parse_float=Decimal)`, so JSON numbers reach these
models as Decimal (or int) and never pass through binary floating point. A float arriving here
means somebody decoded the body the lossy way; it is rejected rather than guessed at.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
)


def decode_object(
    raw: bytes, expect_key: str | None = None, *, lenient: bool = False
) -> dict[str, Any]:
    """Decode a response body exactly (floats become Decimal); ValueError says what is wrong.

    `lenient` (history bodies, whose rows are judged one by one) accepts bytes that are not UTF-8
    and raw control characters inside strings: a byte that is not UTF-8 becomes a lone surrogate
    (`surrogateescape`), so the row holding it is quarantined, never its whole window."""
    try:
        if lenient:
            body = json.loads(lenient_text(raw), parse_float=Decimal, strict=False)
        else:
            body = json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(body, dict):
        raise ValueError(f"JSON {type(body).__name__}, not an object")
    if expect_key is not None and expect_key not in body:
        raise ValueError(f"no {expect_key!r} key")
    return body


def lenient_text(raw: bytes) -> str:
    """A UTF-8 body as text, a byte that is not UTF-8 as a lone surrogate (U+DC80 to U+DCFF)."""
    return raw.removeprefix(b"\xef\xbb\xbf").decode("utf-8", "surrogateescape")


_WHITESPACE = re.compile(r"[ \t\n\r]*")
_ITEM_DECODER = json.JSONDecoder(parse_float=Decimal, strict=False)


def array_item_texts(raw: bytes, key: str) -> list[str] | None:
    """The text of each element of the body's top-level array `key`, exactly as received.

    One pass over the body: each element is scanned once to find where it ends. None when the
    body is not a JSON object holding that array (the caller decoded it already and knows why);
    a repeated key takes its last array, as `json.loads` does. Read as `decode_object(lenient=
    True)` reads it: a byte that is not UTF-8 is a lone surrogate in its element's text, a raw
    control character stays as sent (see `history.row_text`).
    """
    text = lenient_text(raw)
    scan, ws = _ITEM_DECODER.scan_once, _WHITESPACE.match
    texts: list[str] | None = None
    try:
        at = ws(text, 0).end()
        if text[at] != "{":
            return None
        at = ws(text, at + 1).end()
        while text[at] != "}":
            name, at = scan(text, at)
            at = ws(text, at).end()
            if text[at] != ":":
                return None
            at = ws(text, at + 1).end()
            if name == key and text[at] == "[":
                texts = []
                at = ws(text, at + 1).end()
                while text[at] != "]":
                    _, end = scan(text, at)
                    texts.append(text[at:end])
                    at = ws(text, end).end()
                    if text[at] == ",":
                        at = ws(text, at + 1).end()
                    elif text[at] != "]":
                        return None
                at += 1
            else:
                _, at = scan(text, at)
            at = ws(text, at).end()
            if text[at] == ",":
                at = ws(text, at + 1).end()
            elif text[at] != "}":
                return None
    except (IndexError, StopIteration, ValueError, RecursionError):
        return None
    return texts


# One encoder, built once: `json.dumps` with options constructs a new one per call.
_ROW_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_ASCII_ROW_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=str)


def dump_row(row: Any) -> str:
    """Compact JSON of a decoded row, Decimal numbers as exact strings: the stored text of a row
    whose original text is not at hand (a body `array_item_texts` could not split).

    A lone UTF-16 surrogate (a `\\ud800` escape on the wire) cannot be encoded as UTF-8, so a
    row holding one is written with escapes throughout: the same JSON, storable everywhere."""
    text = _ROW_ENCODER.encode(row)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _ASCII_ROW_ENCODER.encode(row)
    return text


# --- enums from the vendor documentation (reference §2, §3); unknown values are flagged ---

ACTIVITY_SOURCES = frozenset({"CLOSE_OUT", "DEALER", "SL", "SYSTEM", "TP", "USER"})
ACTIVITY_STATUSES = frozenset(
    {
        "ACCEPTED", "CREATED", "EXECUTED", "EXPIRED", "REJECTED",
        "MODIFIED", "MODIFY_REJECT", "CANCELLED", "CANCEL_REJECT", "UNKNOWN",
    }
)  # fmt: skip
ACTIVITY_TYPES = frozenset({"POSITION", "WORKING_ORDER", "EDIT_STOP_AND_LIMIT", "SWAP", "SYSTEM"})
DIRECTIONS = frozenset({"BUY", "SELL"})
TRANSACTION_TYPES = frozenset(
    {
        "INACTIVITY_FEE", "RESERVE", "VOID", "UNRESERVE", "WRITE_OFF_OR_CREDIT",
        "CREDIT_FACILITY", "FX_COMMISSION", "COMPLAINT_SETTLEMENT", "DEPOSIT", "WITHDRAWAL",
        "REFUND", "WITHDRAWAL_MONEY_BACK", "TRADE", "SWAP", "TRADE_COMMISSION",
        "TRADE_COMMISSION_GSL", "NEGATIVE_BALANCE_PROTECTION", "TRADE_CORRECTION", "CHARGEBACK",
        "ADJUSTMENT", "BONUS", "TRANSFER", "CORPORATE_ACTION", "CONVERSION", "REBATE",
        "TRADE_SLIPPAGE_PROTECTION",
    }
)  # fmt: skip

# --- field types ---

_UTC_TEXT = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?Z?$")


def parse_utc(value: Any) -> datetime:
    """`2022-01-17T15:09:47.344` or `2022-01-17T15:09:47` (UTC wall clock) -> aware datetime."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if not isinstance(value, str):
        raise ValueError(f"expected a timestamp string, got {type(value).__name__}")
    match = _UTC_TEXT.match(value.strip())
    if match is None:
        raise ValueError("expected YYYY-MM-DDTHH:MM:SS with optional .fraction")
    whole, fraction = match.groups()
    parsed = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    micros = int((fraction or "").ljust(6, "0"))
    return parsed.replace(microsecond=micros, tzinfo=UTC)


def to_decimal(value: Any) -> Decimal:
    """Exact Decimal from a string, int or Decimal; floats and non-finite values are refused."""
    if isinstance(value, bool):
        raise ValueError("expected an amount, got a boolean")
    if isinstance(value, float):
        raise ValueError("float amounts are refused; decode JSON with parse_float=Decimal")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError("not a decimal number") from None
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("amount must be finite")
        return value
    raise ValueError(f"expected an amount, got {type(value).__name__}")


def _optional_decimal(value: Any) -> Decimal | None:
    # `level` is reported as 0 or empty on some market entries; empty means "not given".
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return to_decimal(value)


def _id_text(value: Any) -> Any:
    # References are numeric strings; tolerate a JSON integer without losing digits.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


UtcDateTime = Annotated[datetime, BeforeValidator(parse_utc)]
Amount = Annotated[Decimal, BeforeValidator(to_decimal)]
OptionalAmount = Annotated[Decimal | None, BeforeValidator(_optional_decimal)]
IdText = Annotated[str, BeforeValidator(_id_text)]

ModelT = TypeVar("ModelT", bound=BaseModel)

_CONFIG = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class _Payload(BaseModel):
    model_config = _CONFIG

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Keys the API sent that this model does not name (kept, never dropped)."""
        return dict(self.model_extra or {})


# --- history ---


class Transaction(_Payload):
    """One row of `GET /history/transactions`."""

    date: str | None = None
    date_utc: UtcDateTime = Field(alias="dateUtc")
    instrument_name: str | None = Field(default=None, alias="instrumentName")
    transaction_type: str = Field(alias="transactionType")
    note: str | None = None
    reference: IdText = Field(min_length=1)
    size: Amount
    currency: str
    status: str | None = None
    deal_id: str | None = Field(default=None, alias="dealId")

    @property
    def type_known(self) -> bool:
        return self.transaction_type in TRANSACTION_TYPES

    def unknown_enum_fields(self) -> list[str]:
        return [] if self.type_known else ["transactionType"]


class ActivityAction(_Payload):
    action_type: str | None = Field(default=None, alias="actionType")
    affected_deal_id: str | None = Field(default=None, alias="affectedDealId")


class ActivityDetails(_Payload):
    deal_reference: str | None = Field(default=None, alias="dealReference")
    market_name: str | None = Field(default=None, alias="marketName")
    currency: str | None = None
    size: OptionalAmount = None
    direction: str | None = None
    level: OptionalAmount = None
    guaranteed_stop: bool | None = Field(default=None, alias="guaranteedStop")
    working_order_id: str | None = Field(default=None, alias="workingOrderId")
    stop_level: OptionalAmount = Field(default=None, alias="stopLevel")
    profit_level: OptionalAmount = Field(default=None, alias="profitLevel")
    actions: list[ActivityAction] = Field(default_factory=list)


class Activity(_Payload):
    """One row of `GET /history/activity` (with `detailed=true` it carries `details`)."""

    date: str | None = None
    date_utc: UtcDateTime = Field(alias="dateUTC")
    epic: str | None = None
    deal_id: str | None = Field(default=None, alias="dealId")
    source: str | None = None
    type: str | None = None
    status: str | None = None
    details: ActivityDetails | None = None

    def unknown_enum_fields(self) -> list[str]:
        """Names of fields holding a value outside the documented enum (None is not flagged)."""
        checks = (
            ("source", self.source, ACTIVITY_SOURCES),
            ("status", self.status, ACTIVITY_STATUSES),
            ("type", self.type, ACTIVITY_TYPES),
            ("details.direction", self.details and self.details.direction, DIRECTIONS),
        )
        return [name for name, value, known in checks if value is not None and value not in known]

    def content_key(self) -> tuple[Any, ...]:
        """What makes two activity rows the same row; the API has no activity id."""
        details = self.details
        return (
            self.date_utc,
            self.deal_id,
            self.epic,
            self.type,
            self.status,
            self.source,
            details.level if details else None,
            details.size if details else None,
            details.direction if details else None,
        )


# --- accounts and session ---


class AccountBalance(_Payload):
    balance: OptionalAmount = None
    deposit: OptionalAmount = None
    profit_loss: OptionalAmount = Field(default=None, alias="profitLoss")
    available: OptionalAmount = None


@dataclass(frozen=True)
class UnusableBalance:
    """A balance block that could not be read (not an object, an amount that is not a finite
    decimal): kept as sent, with the reason, so the account and its history still sync."""

    raw: Any
    reason: str


def _balance_block(value: Any) -> AccountBalance | UnusableBalance | None:
    if value is None or isinstance(value, (AccountBalance, UnusableBalance)):
        return value
    if not isinstance(value, dict):
        return UnusableBalance(value, f"balance is a {type(value).__name__}, not an object")
    try:
        return AccountBalance.model_validate(value)
    except ValidationError as error:
        return UnusableBalance(value, describe_validation_error(error, prefix="balance."))


class Account(_Payload):
    """One account of `GET /accounts`. A hostile `balance` block never fails the account: it
    is read as `UnusableBalance` and the ledger skips that observation, with the reason."""

    account_id: IdText = Field(alias="accountId", min_length=1)
    account_name: str | None = Field(default=None, alias="accountName")
    status: str | None = None
    account_type: str | None = Field(default=None, alias="accountType")
    preferred: bool | None = None
    currency: str | None = None
    balance: Annotated[AccountBalance | UnusableBalance | None, PlainValidator(_balance_block)] = (
        None
    )


class LoginSession(_Payload):
    """Body of `POST /session` (tokens travel in headers, never here)."""

    current_account_id: str | None = Field(default=None, alias="currentAccountId")
    client_id: str | None = Field(default=None, alias="clientId")
    account_type: str | None = Field(default=None, alias="accountType")
    currency_iso_code: str | None = Field(default=None, alias="currencyIsoCode")
    timezone_offset: int | None = Field(default=None, alias="timezoneOffset")
    streaming_host: str | None = Field(default=None, alias="streamingHost")
    accounts: list[Account] = Field(default_factory=list)


# --- row parsing that never raises ---


@dataclass(frozen=True)
class RowProblem:
    """A row that could not be used, with the reason; reported, never silently dropped."""

    row: dict[str, Any]
    reason: str


def describe_validation_error(error: ValidationError, prefix: str = "") -> str:
    """Field paths and messages only; input values are left out to keep reasons short."""
    parts = []
    for item in error.errors(include_url=False, include_input=False):
        location = prefix + ".".join(str(part) for part in item["loc"]) or "row"
        parts.append(f"{location}: {item['msg']}")
    return "; ".join(parts)


def _parse_row(model: type[ModelT], row: Any) -> ModelT | RowProblem:
    if not isinstance(row, dict):
        return RowProblem(
            row={"_value": row}, reason=f"row is a {type(row).__name__}, not an object"
        )
    try:
        return model.model_validate(row)
    except ValidationError as error:
        return RowProblem(row=row, reason=describe_validation_error(error))


def parse_transaction(row: Any) -> Transaction | RowProblem:
    return _parse_row(Transaction, row)


def parse_activity(row: Any) -> Activity | RowProblem:
    return _parse_row(Activity, row)


def parse_account(row: Any) -> Account | RowProblem:
    return _parse_row(Account, row)
