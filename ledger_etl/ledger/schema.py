"""The ledger schema: the single source of truth for tables, keys and indexes.

Money is exact on both backends: NUMERIC(38, 8) on PostgreSQL; on SQLite the canonical decimal
TEXT (`-80.43`, `100000000000`), since SQLite's integers stop at 2^63 (92 billion in 1e-8 units)
and its REAL rounds. Sum money with `money_sum(column)`: plain SUM on PostgreSQL, an exact
Decimal aggregate that `ledger.db` registers on SQLite connections. `Money` converts to and from
`Decimal` and refuses what NUMERIC(38, 8) cannot hold exactly (more than eight decimal places,
or 30 integer digits); normalization quarantines such amounts first, so nothing is rounded.
Timestamps are UTC: `UtcDateTime` rejects naive datetimes on the way in and returns aware ones.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, Overflow, Rounded
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction
from sqlalchemy.types import TypeDecorator, TypeEngine

MONEY_SCALE = 8
MONEY_DIGITS = 38
_UNIT = Decimal(1).scaleb(-MONEY_SCALE)
_LIMIT = Decimal(10) ** (MONEY_DIGITS - MONEY_SCALE)
# Exact arithmetic for stored money and its sums: wide enough for a sum of 10^40 NUMERIC(38, 8)
# amounts; anything that would round raises instead.
SUM_CONTEXT = Context(prec=80, Emax=99, Emin=-99, traps=[Inexact, Rounded, Overflow])


class Money(TypeDecorator[Decimal]):
    """Exact decimal money: NUMERIC(38, 8) on PostgreSQL, canonical decimal TEXT on SQLite."""

    impl = Numeric(MONEY_DIGITS, MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(Numeric(MONEY_DIGITS, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        text = money_text(Decimal(value))  # refuses what either backend would round
        return text if dialect.name == "sqlite" else Decimal(text)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, int) and dialect.name == "sqlite":
            raise ValueError("an INTEGER amount on SQLite: run `ledger-etl db upgrade`")
        return Decimal(value)


def money_text(amount: Decimal) -> str:
    """The canonical text of a NUMERIC(38, 8) amount (`20`, `-80.43`, `0.00000001`);
    ValueError when the amount is not finite, has more than eight decimal places or does not
    fit in 30 integer digits: stored, it would be rounded or refused by PostgreSQL."""
    if not amount.is_finite():
        raise ValueError(f"amount {amount} is not a finite number")
    try:
        normal = SUM_CONTEXT.normalize(amount)
    except ArithmeticError:  # Overflow, Rounded: more digits than any stored amount has
        raise ValueError(f"amount {amount} does not fit NUMERIC(38, 8)") from None
    if normal.as_tuple().exponent < -MONEY_SCALE:  # type: ignore[operator]
        raise ValueError(f"amount {amount} has more than {MONEY_SCALE} decimal places")
    if not -_LIMIT < normal < _LIMIT:
        raise ValueError(f"amount {amount} does not fit NUMERIC(38, 8)")
    text = format(normal, "f")
    return "0" if text in ("0", "-0") else text


def to_units(amount: Decimal) -> int:
    """Decimal -> integer count of 1e-8 (the SQLite storage before migration 0002); ValueError
    when that would lose digits."""
    units = SUM_CONTEXT.scaleb(Decimal(money_text(amount)), MONEY_SCALE)
    return int(units)


def from_units(units: int) -> Decimal:
    """Integer count of 1e-8 -> Decimal, exactly (any number of digits)."""
    if not units:
        return Decimal(0)
    return SUM_CONTEXT.normalize(SUM_CONTEXT.multiply(Decimal(units), _UNIT))


class money_sum(GenericFunction[Decimal]):
    """`SUM` of a `Money` column, exact on both backends; NULL over no rows, like SUM."""

    type = Money()
    name = "sum"
    identifier = "money_sum"
    inherit_cache = True


@compiles(money_sum, "sqlite")
def _money_sum_sqlite(element: money_sum, compiler: Any, **kw: Any) -> str:
    return f"ledger_money_sum({compiler.process(element.clauses, **kw)})"


class MoneySum:
    """The SQLite aggregate behind `money_sum`: Decimal addition over the TEXT amounts."""

    def __init__(self) -> None:
        self.total: Decimal | None = None

    def step(self, value: Any) -> None:
        if value is not None:
            amount = Decimal(value) if not isinstance(value, float) else _refuse_float(value)
            self.total = amount if self.total is None else SUM_CONTEXT.add(self.total, amount)

    def finalize(self) -> str | None:
        if self.total is None:
            return None
        text = format(SUM_CONTEXT.normalize(self.total), "f")
        return "0" if text in ("0", "-0") else text


def _refuse_float(value: float) -> Decimal:
    raise ValueError(f"a REAL amount {value!r} in a money column: it has been rounded")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes; stored as UTC (naive on SQLite, timestamptz on PG)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("ledger timestamps must be timezone-aware datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),  # the public run id
    # The run's number inside the database (start order): what per-row run references hold.
    Column("run_key", Integer, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("status", String(16), nullable=False),  # running | succeeded | failed
    Column("params", JSON, nullable=False),
    Column("summary", JSON),
    Column("code_version", String(32), nullable=False),
    Index("ix_runs_run_key", "run_key", unique=True),
)

accounts = Table(
    "accounts",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("account_name", Text),
    Column("currency", String(8)),  # ISO code
    Column("currency_raw", String(16)),  # as the API sent it (USDd on demo)
    Column("account_type", String(32)),
    Column("status", String(32)),
    Column("preferred", Boolean),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
)

balance_observations = Table(
    "balance_observations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), ForeignKey("accounts.account_id"), nullable=False),
    Column("observed_at", UtcDateTime(), nullable=False),
    Column("balance", Money(), nullable=False),
    Column("deposit", Money()),
    Column("profit_loss", Money()),
    Column("available", Money()),
    Column("currency", String(8)),
    Column("run_id", String(64), ForeignKey("runs.run_id")),
    Index("ix_balance_observations_account_time", "account_id", "observed_at"),
)

fetch_log = Table(
    "fetch_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_key", Integer, ForeignKey("runs.run_key"), nullable=False),
    Column("account_id", String(64), nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("window_start", UtcDateTime(), nullable=False),
    Column("window_end", UtcDateTime(), nullable=False),
    Column("params", JSON, nullable=False),
    Column("http_status", Integer),
    Column("attempts", Integer, nullable=False),
    Column("relogins", Integer, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("body_sha256", String(64)),
    Column("min_ts", UtcDateTime()),
    Column("max_ts", UtcDateTime()),
    Column("duration_s", Float, nullable=False),
    Column("ids", JSON, nullable=False),
    Column("outcome", String(16), nullable=False),  # complete | split | failed | retried
    Column("error", Text),
    Column("parent_start", UtcDateTime()),
    Column("parent_end", UtcDateTime()),
    Column("fetched_at", UtcDateTime(), nullable=False),
    Index("ix_fetch_log_coverage", "account_id", "endpoint", "window_start", "window_end"),
)

raw_transactions = Table(
    "raw_transactions",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("reference", String(64), primary_key=True),
    Column("raw", Text, nullable=False),  # the row's JSON exactly as received
    Column("row_sha256", LargeBinary(32), nullable=False),  # sha256 of `raw`, 32 bytes
    Column("date_utc", UtcDateTime(), nullable=False),
    Column("window_start", UtcDateTime(), nullable=False),
    Column("window_end", UtcDateTime(), nullable=False),
    Column("first_run_key", Integer, nullable=False),  # runs.run_key
)

raw_activities = Table(
    "raw_activities",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("activity_key", String(64), primary_key=True),  # sha256(content) + occurrence
    Column("occurrence", Integer, nullable=False),
    Column("raw", Text, nullable=False),
    Column("date_utc", UtcDateTime(), nullable=False),
    Column("window_start", UtcDateTime(), nullable=False),
    Column("window_end", UtcDateTime(), nullable=False),
    Column("first_run_key", Integer, nullable=False),  # runs.run_key
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("reference", String(64), primary_key=True),
    Column("posted_at", UtcDateTime(), nullable=False),
    Column("transaction_type", String(64), nullable=False),
    Column("instrument", String(128)),
    Column("amount", Money(), nullable=False),
    Column("currency", String(8), nullable=False),  # ISO code
    Column("currency_raw", String(16), nullable=False),
    Column("status", String(32)),
    Column("deal_id", String(64)),
    Column("note", Text),
    Column("ledger_account", String(16), nullable=False),  # chart-of-accounts code
    Column("flags", String(255), nullable=False),  # comma-separated, e.g. unknown_type
    Column("row_sha256", String(64), nullable=False),  # of the normalized content
    Column("first_run_key", Integer, nullable=False),  # runs.run_key: the run that stored it
    Column("last_run_key", Integer, nullable=False),  # and the run that last changed it
    Index("ix_ledger_entries_account_time", "account_id", "posted_at"),
)

activities = Table(
    "activities",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("activity_key", String(64), primary_key=True),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("epic", String(64)),
    Column("deal_id", String(64)),
    Column("source", String(32)),
    Column("activity_type", String(32)),
    Column("status", String(32)),
    Column("deal_reference", String(128)),
    Column("direction", String(8)),
    Column("size", Text),  # canonical decimal text: never summed
    Column("level", Text),
    Column("working_order_id", String(64)),
    Column("actions", String(255), nullable=False),  # comma-separated action types
    Column("flags", String(255), nullable=False),
    Column("first_run_key", Integer, nullable=False),  # runs.run_key
    Index("ix_activities_account_time", "account_id", "occurred_at"),
    Index("ix_activities_deal", "account_id", "deal_id"),
)

entry_history = Table(
    "entry_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),
    Column("reference", String(64), nullable=False),
    Column("previous", JSON, nullable=False),  # the replaced ledger row, amounts as strings
    Column("replaced_at", UtcDateTime(), nullable=False),
    Column("run_id", String(64), nullable=False),
    Index("ix_entry_history_entry", "account_id", "reference"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("raw_sha256", String(64), nullable=False),
    Column("raw", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("window_start", UtcDateTime()),
    Column("window_end", UtcDateTime()),
    Column("first_run_id", String(64), nullable=False),
    Column("last_run_id", String(64), nullable=False),
    UniqueConstraint("account_id", "endpoint", "raw_sha256", name="uq_quarantine_row"),
)

# The source each account was filled from (ledger/provenance.py); one per account.
account_sources = Table(
    "account_sources",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("source_url", Text, nullable=False),
    Column("fingerprint", String(16), nullable=False),
    Column("detail", JSON, nullable=False),
    Column("first_run_id", String(64), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
)

# -- write path: what raw_*.last_run_id held before revision 0004 ---------------------------------
# The last run that saw a raw row is derived from the fetch log (view `raw_last_seen`,
# ledger/seen.py). Where the stored value said more than the fetch log can (a rebuild bumped it
# without fetching), revision 0004 kept it here; nothing writes to this table afterwards.
raw_seen_legacy = Table(
    "raw_seen_legacy",
    metadata,
    Column("endpoint", String(32), primary_key=True),
    Column("account_id", String(64), primary_key=True),
    Column("row_key", String(64), primary_key=True),
    Column("run_id", String(64), nullable=False),
)

# What the account's stored ledger rows were normalized with (ledger/marks.py): a fingerprint
# of chart, currency and normalization code, NULL when its rows were made with several.
normalization_marks = Table(
    "normalization_marks",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("fingerprint", String(64)),
)


# -- trading state (ledger_etl/trading): instrument master, bitemporal snapshots, lifecycles ----
# Snapshot rows carry the broker's own timestamps (created_at, good_till) beside the span of
# observation [observed_from, observed_to): a row is written only when a deal's content changes,
# and closed (observed_to set) when a later poll sees it changed or gone.

instrument_versions = Table(
    "instrument_versions",
    metadata,
    Column("instrument_id", String(80), primary_key=True),  # CAPITAL:<epic>
    Column("valid_from", UtcDateTime(), primary_key=True),
    Column("valid_to", UtcDateTime()),  # NULL: the current version
    Column("epic", String(64), nullable=False),
    Column("name", Text),
    Column("symbol", Text),
    Column("asset_class", String(32)),
    Column("currency", String(8)),
    Column("lot_size", Money()),
    Column("margin_factor", Money()),
    Column("margin_factor_unit", String(16)),
    Column("guaranteed_stop_allowed", Boolean),
    Column("dealing_rules", JSON, nullable=False),
    Column("external_ids", JSON, nullable=False),  # {"ISIN": ..., "FIGI": ..., "TRADINGVIEW": ...}
    Column("attributes_sha256", String(64), nullable=False),
    Index("ix_instrument_versions_epic", "epic", "valid_from"),
)

trading_polls = Table(
    "trading_polls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),
    Column("observed_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),  # complete | failed
    Column("currency", String(8)),
    Column("positions_seen", Integer, nullable=False),
    Column("orders_seen", Integer, nullable=False),
    Column("rows_written", Integer, nullable=False),
    Column("figures", JSON, nullable=False),  # balance, available, profitLoss as exact strings
    Column("problems", JSON, nullable=False),  # flagged rows with their reasons
    Column("error", Text),
    Index("ix_trading_polls_account_time", "account_id", "observed_at"),
)


def _snapshot_columns() -> list[Column[Any]]:
    return [
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("account_id", String(64), nullable=False),
        Column("deal_id", String(64), nullable=False),
        Column("observed_from", UtcDateTime(), nullable=False),
        Column("observed_to", UtcDateTime()),
        Column("content_sha256", String(64), nullable=False),
        Column("created_at", UtcDateTime()),  # the broker's createdDateUTC
        Column("epic", String(64), nullable=False),
        Column("direction", String(8), nullable=False),
        Column("size", Money(), nullable=False),
        Column("level", Money(), nullable=False),
        Column("stop_level", Money()),
        Column("stop_distance", Money()),
        Column("profit_level", Money()),
        Column("profit_distance", Money()),
        Column("guaranteed_stop", Boolean, nullable=False),
        Column("trailing_stop", Boolean, nullable=False),
        Column("deal_reference", String(128)),
        Column("working_order_id", String(64)),
        Column("raw", Text, nullable=False),
    ]


position_snapshots = Table(
    "position_snapshots",
    metadata,
    *_snapshot_columns(),
    Column("broker_upl", Money()),  # at the first observation of this content
    Index("ix_position_snapshots_time", "account_id", "observed_from"),
    Index("ix_position_snapshots_deal", "account_id", "deal_id"),
)

order_snapshots = Table(
    "order_snapshots",
    metadata,
    *_snapshot_columns(),
    Column("order_type", String(16), nullable=False),
    Column("time_in_force", String(32)),
    Column("good_till", UtcDateTime()),
    Index("ix_order_snapshots_time", "account_id", "observed_from"),
    Index("ix_order_snapshots_deal", "account_id", "deal_id"),
)

market_quotes = Table(
    "market_quotes",
    metadata,
    Column("epic", String(64), primary_key=True),
    Column("observed_at", UtcDateTime(), primary_key=True),
    Column("bid", Money(), nullable=False),
    Column("offer", Money(), nullable=False),
    Column("market_status", String(32)),
    Column("source", String(32), nullable=False),  # positions | workingorders | markets
)

deal_lifecycles = Table(
    "deal_lifecycles",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("deal_id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # order | position
    Column("state", String(32), nullable=False),
    Column("epic", String(64)),
    Column("intended", JSON, nullable=False),
    Column("executed", JSON, nullable=False),
    Column("current", JSON, nullable=False),
    Column("flags", JSON, nullable=False),
    Column("gone_since", UtcDateTime()),
    Column("event_keys", JSON, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

trading_changelog = Table(
    "trading_changelog",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("deal_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("event", String(32), nullable=False),
    Column("from_state", String(32)),
    Column("to_state", String(32)),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Column("source", String(16), nullable=False),  # snapshot | activity | confirm | submission
    Column("detail", JSON, nullable=False),
    Column("flag", String(32)),  # invalid_transition | vanished | None
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    Index("ix_trading_changelog_deal", "account_id", "deal_id"),
)

trading_alerts = Table(
    "trading_alerts",
    metadata,
    Column("account_id", String(64), primary_key=True),
    Column("alert_key", String(64), primary_key=True),
    Column("rule", String(64), nullable=False),
    Column("deal_id", String(64)),
    Column("detail", JSON, nullable=False),
    Column("first_at", UtcDateTime(), nullable=False),
    Column("last_at", UtcDateTime(), nullable=False),
    Column("resolved_at", UtcDateTime()),
)


# -- read service: users, their tokens (hashes only) and the read audit ------------------------
service_users = Table(
    "service_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("role", String(16), nullable=False),  # finance | risk | admin
    Column("accounts", JSON, nullable=False),  # a list of account ids, or ["*"] for all
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime()),
)

read_audit = Table(
    "read_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("user_name", String(64)),  # None when no user was authenticated
    Column("client", String(64), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", Text, nullable=False),  # the route and its query, never a header
    Column("account_id", String(64)),
    Column("status", Integer, nullable=False),
    Column("outcome", String(32), nullable=False),  # served | not_found | refused | ...
    Column("sha256", String(64)),  # of the bytes served, when a file was served
    Column("detail", Text),
    Index("ix_read_audit_at", "at"),
    Index("ix_read_audit_user", "user_name", "at"),
)


# -- trade intents (ledger_etl/intents): webhook alerts turned into orders, exactly once -------
# One row per (account, idempotency key): it is written before anything is sent to the broker,
# so a repeated delivery finds it and sends nothing. The secret is never part of `payload`.

trade_intents = Table(
    "trade_intents",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(64), nullable=False),
    Column("idem_key", String(200), nullable=False),  # alert:<alert_id> | sha256:<payload hash>
    Column("payload_sha256", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("epic", String(64)),
    Column("action", String(8), nullable=False),
    Column("mode", String(8), nullable=False),  # dry_run | live
    Column("state", String(16), nullable=False),
    Column("reason", Text),
    Column("violations", JSON, nullable=False),
    Column("order_request", JSON),  # the validated request in the broker's terms
    Column("pre_deals", JSON),  # the epic's deals just before the POST, for recovery
    Column("deal_reference", String(128)),
    Column("deal_ids", JSON, nullable=False),  # order dealId, then affected deal ids
    Column("confirm", JSON),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime()),
    Column("intended_level", Money()),
    Column("filled_level", Money()),
    Column("slippage", Money()),
    Column("steps", JSON, nullable=False),  # [{"state", "at"}], one per transition
    Column("received_at", UtcDateTime(), nullable=False),
    Column("acknowledged_at", UtcDateTime()),
    Column("submitted_at", UtcDateTime()),
    Column("confirmed_at", UtcDateTime()),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("account_id", "idem_key", name="uq_trade_intents_key"),
    Index("ix_trade_intents_queue", "state", "next_attempt_at"),
)


# -- market data (ledger_etl/market) ------------------------------------------------------------
# One row per bar key (epic, resolution, bar type, open time); the price type is the column
# family (bid_* / ask_*), since the stream sends bid and ask as separate events of one bar. A bar
# is `final` only once its close time has passed; `revision` counts changes of its values (a REST
# answer superseding a stream value is one). Prices use the exact `Money` type.
price_bars = Table(
    "price_bars",
    metadata,
    Column("epic", String(64), primary_key=True),
    Column("resolution", String(16), primary_key=True),
    Column("bar_type", String(16), primary_key=True),
    Column("t", UtcDateTime(), primary_key=True),
    *(Column(f"{side}_{k}", Money()) for side in ("bid", "ask") for k in "ohlc"),
    Column("volume", Integer),
    Column("source", String(8), nullable=False),
    Column("final", Boolean, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("first_seen", UtcDateTime(), nullable=False),
    Column("last_seen", UtcDateTime(), nullable=False),
)

# Windows `[start, end)` of bar open times that a REST answer covered in full (no bar missing
# there but those the market never had); with the final bars, the coverage of an epic, resolution.
price_coverage = Table(
    "price_coverage",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("epic", String(64), nullable=False),
    Column("resolution", String(16), nullable=False),
    Column("bar_type", String(16), nullable=False),
    Column("start", UtcDateTime(), nullable=False),
    Column("end", UtcDateTime(), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_price_coverage_key", "epic", "resolution", "bar_type", "start"),
)


# -- market extras: client sentiment, watchlists, chart templates (ledger_etl/market/) -----------

# One row per (market, observed instant): the broker's sentiment at the server time of a poll.
# Percentages are exact decimals (Money: NUMERIC / canonical TEXT). The same instant answered
# again with other figures replaces them and counts a revision; the same figures change nothing.
sentiment_observations = Table(
    "sentiment_observations",
    metadata,
    Column("epic", String(64), primary_key=True),
    Column("observed_at", UtcDateTime(), primary_key=True),
    Column("long_pct", Money(), nullable=False),
    Column("short_pct", Money(), nullable=False),
    Column("flags", String(255), nullable=False),  # comma-separated, e.g. not_hundred
    Column("raw", Text, nullable=False),  # the row's JSON as received
    Column("revision", Integer, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("recorded_at", UtcDateTime(), nullable=False),
    Index("ix_sentiment_observations_time", "observed_at"),
)

# Every poll, whatever it found: the coverage of the sentiment series.
sentiment_polls = Table(
    "sentiment_polls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("observed_at", UtcDateTime(), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("asked", Integer, nullable=False),
    Column("observed", Integer, nullable=False),
    Column("new_rows", Integer, nullable=False),
    Column("unknown", JSON, nullable=False),  # epics the API did not know
    Column("problems", JSON, nullable=False),  # [{row, reason}] of unusable rows
    Column("recorded_at", UtcDateTime(), nullable=False),
)

# A watchlist as last listed; deleted_at is the first poll that no longer listed it.
watchlists = Table(
    "watchlists",
    metadata,
    Column("watchlist_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("editable", Boolean),
    Column("deleteable", Boolean),
    Column("default_system", Boolean),
    Column("raw", Text, nullable=False),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
    Column("deleted_at", UtcDateTime()),
)

# Membership history: a row per stretch [valid_from, valid_to) during which the market was in
# the list, written only when membership changes; valid_to NULL means "still a member".
watchlist_members = Table(
    "watchlist_members",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("watchlist_id", String(64), nullable=False),
    Column("epic", String(64), nullable=False),
    Column("valid_from", UtcDateTime(), nullable=False),
    Column("valid_to", UtcDateTime()),
    Column("added_run_id", String(64), nullable=False),
    Column("removed_run_id", String(64)),
    Index("ix_watchlist_members_list", "watchlist_id", "epic", "valid_from"),
)

# Every watchlist poll: the coverage of the membership history.
watchlist_polls = Table(
    "watchlist_polls",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("observed_at", UtcDateTime(), nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("watchlists", Integer, nullable=False),
    Column("added", Integer, nullable=False),
    Column("removed", Integer, nullable=False),
    Column("unreadable", JSON, nullable=False),  # {watchlist id: reason}
    Column("recorded_at", UtcDateTime(), nullable=False),
)

# Chart templates by name; each content change is a new version (content hash of the
# canonical JSON), unchanged content adds none.
chart_templates = Table(
    "chart_templates",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("current_version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

chart_template_versions = Table(
    "chart_template_versions",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("content_sha256", String(64), nullable=False),
    Column("content", Text, nullable=False),  # canonical JSON, the bytes the hash is of
    Column("source", Text),  # the file it was imported from
    Column("imported_at", UtcDateTime(), nullable=False),
    Index("ix_chart_template_versions_hash", "name", "content_sha256"),
)
