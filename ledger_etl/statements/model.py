"""The statement's frozen dataclasses: what the query reads and what the builder produces.

Inputs (`LedgerEntry`, `ActivityRecord`, `FetchRecord`, `Gap`, `BalanceObservation`,
`StatementInputs`) are plain values read from the ledger; `Statement` is the built model every
writer renders. Money is `Decimal`, time is timezone-aware UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

SCHEMA_VERSION = 1

StatementStatus = Literal["FINAL", "PROVISIONAL"]
ReconciliationStatus = Literal["RECONCILED", "DIFFERENCE", "UNVERIFIED"]


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar month `[start, end)` in UTC; `label` is `YYYY-MM`."""

    label: str
    start: datetime
    end: datetime
    previous_start: datetime


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    reference: str
    posted_at: datetime
    transaction_type: str
    instrument: str | None
    amount: Decimal
    currency: str
    status: str | None
    deal_id: str | None
    note: str | None
    ledger_account: str
    flags: str
    row_sha256: str
    last_run_id: str


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    activity_key: str
    occurred_at: datetime
    activity_type: str | None
    status: str | None
    actions: str
    epic: str | None
    deal_id: str | None
    direction: str | None
    size: str | None  # canonical decimal text, as stored
    level: str | None
    source: str | None
    deal_reference: str | None
    working_order_id: str | None


@dataclass(frozen=True, slots=True)
class ForeignCurrencyEntry:
    """A transaction of the period in another currency than the account's: quarantined, so it is
    in no balance or total, and listed on the statement so that it is not lost from sight."""

    reference: str
    posted_at: datetime
    transaction_type: str
    amount: Decimal
    currency: str  # as the API sent it
    reason: str


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """One complete window fetch from `fetch_log`: the evidence a statement rests on."""

    endpoint: str
    window_start: datetime
    window_end: datetime
    params: str  # canonical JSON of the request parameters
    http_status: int | None
    attempts: int
    row_count: int
    body_sha256: str | None
    ids: tuple[str, ...]
    fetched_at: datetime
    run_id: str


@dataclass(frozen=True, slots=True)
class Gap:
    endpoint: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class BalanceObservation:
    observed_at: datetime
    balance: Decimal
    currency: str | None
    run_id: str | None


@dataclass(frozen=True, slots=True)
class ObservationWindow:
    """What the ledger holds between the period's end and the balance observation.

    `movement` sums the entries in `[period end, observed_at)` (or `[observed_at, period end)`
    when the observation is earlier); `gaps` are the transaction gaps found there, and
    `unchecked_from` is where coverage cannot be proven yet (fetches settle for a while).
    """

    movement: Decimal
    gaps: tuple[Gap, ...] = ()
    unchecked_from: datetime | None = None


@dataclass(frozen=True)
class StatementInputs:
    account_id: str
    account_name: str | None
    currency: str
    period: Period
    balance_before: Decimal  # all entries before the period
    balance_before_previous: Decimal  # all entries before the previous month
    previous_movement: Decimal  # the previous month's entries
    balance_at_end: Decimal  # all entries before the period's end, summed by the database
    entries: tuple[LedgerEntry, ...]  # the period's entries, sorted by (posted_at, reference)
    activities: tuple[ActivityRecord, ...]
    fetches: tuple[FetchRecord, ...]
    gaps: tuple[Gap, ...]
    observation: BalanceObservation | None
    observation_window: ObservationWindow | None
    ledger_account_names: Mapping[str, str] = field(default_factory=dict)
    transaction_type_names: Mapping[str, str] = field(default_factory=dict)
    # The closing of the previous month's published FINAL statement, if there is one.
    previous_final_closing: Decimal | None = None
    month_closed: bool = True  # False for the current month (published only as PROVISIONAL)
    foreign_currency: tuple[ForeignCurrencyEntry, ...] = ()
    # Why the broker's newest balance report was not observed (`balance_unusable: ...`), read
    # when the ledger holds no observation for the account.
    skipped_balance: str | None = None


# -- the built model ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StatementLine:
    entry: LedgerEntry
    running_balance: Decimal


@dataclass(frozen=True, slots=True)
class Total:
    key: str
    name: str
    count: int
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Reconciliation:
    status: ReconciliationStatus
    closing_balance: Decimal
    observed_at: datetime | None = None
    observed_balance: Decimal | None = None
    movement_between: Decimal | None = None  # ledger entries between period end and observation
    implied_closing: Decimal | None = None  # the observation rolled back (or forward)
    difference: Decimal | None = None  # closing balance - implied closing
    reason: str | None = None
    # Coverage just before a sync-time observation cannot be proven yet (see ObservationWindow).
    unproven_from: datetime | None = None


@dataclass(frozen=True, slots=True)
class Coverage:
    fetches: tuple[FetchRecord, ...]
    gaps: tuple[Gap, ...]

    @property
    def complete(self) -> bool:
        return not self.gaps


@dataclass(frozen=True, slots=True)
class LedgerState:
    """The ledger rows a statement was built from: equal digests, equal rows."""

    entry_count: int
    rows_digest: str  # sha256 over the entries' row_sha256 in statement order
    max_last_run_id: str | None


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ChangedEntry:
    reference: str
    fields: tuple[tuple[str, str | None, str | None], ...]  # (field, before, after)


@dataclass(frozen=True, slots=True)
class StatementDiff:
    previous_version: int
    previous_content_hash: str
    added: tuple[str, ...]
    changed: tuple[ChangedEntry, ...]
    removed: tuple[str, ...]
    opening_delta: Decimal
    closing_delta: Decimal


@dataclass(frozen=True)
class Statement:
    account_id: str
    account_name: str | None
    currency: str
    period: Period
    status: StatementStatus
    opening_balance: Decimal
    closing_balance: Decimal
    movement: Decimal
    lines: tuple[StatementLine, ...]
    totals_by_type: tuple[Total, ...]
    totals_by_ledger_account: tuple[Total, ...]
    activity: tuple[ActivityRecord, ...]
    reconciliation: Reconciliation
    coverage: Coverage
    ledger_state: LedgerState
    checks: tuple[Check, ...]
    foreign_currency_entries: tuple[ForeignCurrencyEntry, ...] = ()
    version: int | None = None
    diff: StatementDiff | None = None
    schema_version: int = SCHEMA_VERSION
    # Why the statement is PROVISIONAL (empty when FINAL): see build.status_reasons.
    status_reasons: tuple[str, ...] = ()

    @property
    def is_final(self) -> bool:
        return self.status == "FINAL"
