"""From fetched history to stored ledger: runs, accounts, balances, rows, quarantine, coverage.

These functions are what the CLI and the Dagster assets both call.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from ledger_etl import __version__
from ledger_etl.capital.history import HistoryResult
from ledger_etl.capital.models import (
    Account,
    AccountBalance,
    Activity,
    Transaction,
    UnusableBalance,
    dump_row,
)
from ledger_etl.intervals import Window
from ledger_etl.ledger import marks
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.chart import ChartOfAccounts
from ledger_etl.ledger.db import checkpoint_deferred, checkpoint_wal
from ledger_etl.ledger.faultpoints import checkpoint
from ledger_etl.ledger.normalize import (
    Rejected,
    normalize_activity,
    normalize_currency,
    normalize_transaction,
)
from ledger_etl.ledger.store import (
    LedgerWriter,
    QuarantineRow,
    StagedActivity,
    StagedTransaction,
    WriteCounts,
)
from ledger_etl.runs import new_run_id


@dataclass
class IngestSummary:
    account_id: str
    endpoint: str
    rows: int = 0
    inserted: int = 0
    changed: int = 0
    unchanged: int = 0
    quarantined: int = 0
    removed: int = 0  # stored entries taken out: their re-fetched version is now rejected
    flagged: int = 0  # stored, but marked (unknown type, cleaned note, ...)
    windows: int = 0
    failed_windows: int = 0
    split_windows: int = 0
    retries: int = 0
    relogins: int = 0
    gaps: list[Window] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gaps"] = [[g.start.isoformat(), g.end.isoformat()] for g in self.gaps]
        return data

    def merge(self, other: IngestSummary) -> IngestSummary:
        """Add another range's summary of the same account and endpoint into this one."""
        for name in (
            "rows",
            "inserted",
            "changed",
            "unchanged",
            "quarantined",
            "removed",
            "flagged",
            "windows",
            "failed_windows",
            "split_windows",
            "retries",
            "relogins",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.gaps = [*self.gaps, *other.gaps]
        return self


def start_run(engine: Engine, kind: str, params: dict[str, Any]) -> str:
    run_id = new_run_id()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # SQLite serializes writers already
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _RUN_KEY_LOCK})
        conn.execute(insert(s.runs).values(
            run_id=run_id, kind=kind, started_at=datetime.now(UTC), status="running",
            params=json.loads(json.dumps(params, default=str)), code_version=__version__,
            run_key=select(func.coalesce(func.max(s.runs.c.run_key), 0) + 1).scalar_subquery(),
        ))  # fmt: skip
    return run_id


# Runs get consecutive keys (`runs.run_key`) under this transaction-scoped lock on PostgreSQL.
_RUN_KEY_LOCK = 7042175302


def finish_run(engine: Engine, run_id: str, status: str, summary: dict[str, Any]) -> float:
    """Record the run's end, then checkpoint SQLite's WAL (the ingests deferred it); returns the
    checkpoint's seconds (the run record's own commit must not checkpoint first)."""
    with engine.connect() as conn, checkpoint_deferred(conn), conn.begin():
        conn.execute(update(s.runs).where(s.runs.c.run_id == run_id).values(
            finished_at=datetime.now(UTC), status=status,
            summary=json.loads(json.dumps(summary, default=str)),
        ))  # fmt: skip
    return checkpoint_wal(engine)


def record_accounts(
    engine: Engine,
    run_id: str,
    accounts: Sequence[Account],
    observed_at: datetime,
    *,
    observe_balances: bool = True,
) -> dict[str, str]:
    """Register the accounts and, with `observe_balances`, keep this sync's broker balance
    observation of each.

    A balance that is missing or cannot be stored exactly is not observed: its block goes to
    quarantine (endpoint `accounts`) with the reason, and the reasons come back by account id.
    One hostile balance never stops a sync; its statement then has no observation to claim."""
    skipped: dict[str, str] = {}
    with engine.begin() as conn:
        for account in accounts:
            values = {
                "account_name": account.account_name, "account_type": account.account_type,
                "status": account.status, "preferred": account.preferred,
                "currency_raw": account.currency,
                "currency": normalize_currency(account.currency) if account.currency else None,
                "last_seen_at": observed_at,
            }  # fmt: skip
            exists = conn.execute(
                select(s.accounts.c.account_id).where(s.accounts.c.account_id == account.account_id)
            ).first()
            if exists:
                conn.execute(
                    update(s.accounts)
                    .where(s.accounts.c.account_id == account.account_id)
                    .values(**values)
                )
            else:
                conn.execute(
                    insert(s.accounts).values(
                        account_id=account.account_id, first_seen_at=observed_at, **values
                    )
                )
            if not observe_balances:
                continue
            amounts, problem = balance_amounts(account)
            if problem is not None:
                problem = problem[:_REASON_CAP]  # a 10,000-digit amount is quoted in it
                skipped[account.account_id] = problem
                LedgerWriter(conn, run_id).quarantine([QuarantineRow(
                    account.account_id, "accounts", _balance_text(account), problem,
                    observed_at, observed_at,
                )])  # fmt: skip
                continue
            conn.execute(insert(s.balance_observations).values(
                account_id=account.account_id, observed_at=observed_at,
                currency=values["currency"], run_id=run_id, **amounts,
            ))  # fmt: skip
    return skipped


_REASON_CAP = 300
_BALANCE_FIELDS = ("balance", "deposit", "profit_loss", "available")
_WIRE_NAMES = {"profit_loss": "profitLoss"}


def balance_amounts(account: Account) -> tuple[dict[str, Any], str | None]:
    """The observation's amounts, or why there is none: `balance_missing: ...` (no block, no
    balance) or `balance_unusable: ...` (a field that is not a finite decimal, or one that
    NUMERIC(38, 8) cannot hold exactly: every field is checked, none is rounded or dropped)."""
    block = account.balance
    if block is None:
        return {}, "balance_missing: the account has no balance object"
    if isinstance(block, UnusableBalance):
        return {}, f"balance_unusable: {block.reason}"
    if block.balance is None:
        return {}, "balance_missing: balance.balance is missing, null or empty"
    amounts = {name: getattr(block, name) for name in _BALANCE_FIELDS}
    for name, amount in amounts.items():
        if amount is None:
            continue
        try:
            s.money_text(amount)
        except ValueError as error:
            return {}, f"balance_unusable: balance.{_WIRE_NAMES.get(name, name)}: {error}"
    return amounts, None


def _balance_text(account: Account) -> str:
    """The account's balance block as sent (the rest of the account is stored in `accounts`)."""
    block = account.balance
    raw = block.raw if isinstance(block, UnusableBalance) else block
    if isinstance(raw, AccountBalance):
        raw = raw.model_dump(by_alias=True, exclude_none=True)
    return dump_row({"accountId": account.account_id, "balance": raw})


def _fetch_rows(result: HistoryResult, fetched_at: datetime) -> list[dict[str, Any]]:
    return [
        {
            "account_id": r.account_id, "endpoint": r.endpoint, "window_start": r.window_start,
            "window_end": r.window_end, "params": dict(r.params), "http_status": r.http_status,
            "attempts": r.attempts, "relogins": r.relogins, "row_count": r.row_count,
            "body_sha256": r.body_sha256, "min_ts": r.min_ts, "max_ts": r.max_ts,
            "duration_s": r.duration_s, "ids": list(r.ids), "outcome": r.outcome,
            "error": r.error, "parent_start": r.parent.start if r.parent else None,
            "parent_end": r.parent.end if r.parent else None, "fetched_at": fetched_at,
        }
        for r in result.records
    ]  # fmt: skip


def account_currency(engine: Engine | Connection, account_id: str) -> str | None:
    """The account's ISO currency as last recorded from the broker; None when unknown."""
    query = select(s.accounts.c.currency).where(s.accounts.c.account_id == account_id)
    if isinstance(engine, Connection):
        return engine.execute(query).scalar()
    with engine.connect() as conn:
        return conn.execute(query).scalar()


@dataclass
class _Verdicts:
    """References of this range's transactions that were accepted and that were rejected."""

    accepted: set[str] = field(default_factory=set)
    rejected: set[str] = field(default_factory=set)

    def leaving(self) -> set[str]:
        """Stored entries the broker now sends in a form that is rejected: they leave the ledger
        (`LedgerWriter.remove_entries`), as a rebuild would take them out. A reference also
        accepted in this range (two windows returned two versions) stays."""
        return self.rejected - self.accepted


def _staged_transactions(
    result: HistoryResult,
    chart: ChartOfAccounts,
    quarantined: list[QuarantineRow],
    summary: IngestSummary,
    currency: str | None,
    skip: set[int] | frozenset[int] = frozenset(),
    verdicts: _Verdicts | None = None,
) -> Iterator[StagedTransaction]:
    """The range's transactions, normalized; rows that cannot enter the ledger are quarantined.
    Rows at the indexes in `skip` (stored unchanged, see `ledger.marks`) are left out."""
    account_id, endpoint = result.account_id, result.endpoint
    verdicts = verdicts if verdicts is not None else _Verdicts()
    for index, (row, raw, window) in enumerate(
        zip(result.rows, result.raws, result.windows, strict=True)
    ):
        if not isinstance(row, Transaction):
            continue
        if index in skip:
            verdicts.accepted.add(row.reference)
            continue
        normalized = normalize_transaction(account_id, row, chart, currency)
        if isinstance(normalized, Rejected):
            verdicts.rejected.add(row.reference)
            quarantined.append(
                QuarantineRow(
                    account_id, endpoint, raw, normalized.reason, window.start, window.end
                )
            )
            continue
        verdicts.accepted.add(row.reference)
        summary.flagged += bool(normalized.flags)
        yield StagedTransaction(normalized, raw, window.start, window.end)


def _unparsed_references(result: HistoryResult) -> set[str]:
    """References of the range's transaction rows that could not be parsed at all (a row
    returned outside its window is not a verdict on the row: another window may return it)."""
    if result.endpoint != "transactions":
        return set()
    found = set()
    for problem in result.problems:
        reference = problem.row.get("reference") if isinstance(problem.row, dict) else None
        if isinstance(reference, str) and " outside window " not in problem.reason:
            found.add(reference)
    return found


def _write_transactions(
    conn: Connection,
    writer: LedgerWriter,
    result: HistoryResult,
    chart: ChartOfAccounts,
    quarantined: list[QuarantineRow],
    summary: IngestSummary,
) -> WriteCounts:
    """Store the range's transactions, skipping rows stored unchanged when the account's mark
    allows it (`ledger.marks`); the rest is normalized lazily, one batch prepared while the
    writer merges the previous one."""
    account_id = result.account_id
    currency = account_currency(conn, account_id)
    current = marks.fingerprint(chart, currency)
    mark = marks.read_mark(conn, account_id)
    first = not marks.has_rows(conn, account_id)
    skip: set[int] = set()
    flagged = 0
    if mark == current:
        skip, flagged = marks.unchanged_rows(conn, account_id, [
            (i, row.reference, raw, row.date_utc)
            for i, (row, raw) in enumerate(zip(result.rows, result.raws, strict=True))
            if isinstance(row, Transaction)
        ])  # fmt: skip
    verdicts = _Verdicts(rejected=_unparsed_references(result))
    counts = writer.write_transactions(
        _staged_transactions(result, chart, quarantined, summary, currency, skip, verdicts),
        fresh=first,
    )
    counts.unchanged += len(skip)
    if not first:
        counts.removed = writer.remove_entries(account_id, verdicts.leaving())
    summary.flagged += flagged
    wrote = counts.inserted + counts.changed > 0
    marks.after_write(conn, account_id, mark, current, first=first, wrote=wrote)
    return counts


def ingest_history(
    engine: Engine,
    run_id: str,
    result: HistoryResult,
    chart: ChartOfAccounts,
    fetched_at: datetime | None = None,
) -> IngestSummary:
    """Store one fetched range atomically; re-running it any number of times changes nothing."""
    summary = IngestSummary(result.account_id, result.endpoint, rows=len(result.rows))
    quarantined: list[QuarantineRow] = [
        QuarantineRow(result.account_id, result.endpoint, dump_row(p.row), p.reason)
        for p in result.problems
    ]
    staged_act: list[StagedActivity] = []
    has_transactions = False
    for row, key, raw, window in zip(
        result.rows, result.keys, result.raws, result.windows, strict=True
    ):
        if isinstance(row, Transaction):
            has_transactions = True
        elif isinstance(row, Activity):
            activity = normalize_activity(result.account_id, row, key)
            if isinstance(activity, Rejected):
                quarantined.append(
                    QuarantineRow(
                        result.account_id, result.endpoint, raw, activity.reason,
                        window.start, window.end,
                    )
                )  # fmt: skip
                continue
            summary.flagged += bool(activity.flags)
            staged_act.append(
                StagedActivity(
                    activity,
                    int(key[-1]),
                    raw,
                    window.start,
                    window.end,
                )
            )
    checkpoint("after_fetch")
    with engine.connect() as conn, checkpoint_deferred(conn), conn.begin():
        writer = LedgerWriter(conn, run_id)
        writer.lock_account(result.account_id)
        counts = WriteCounts()
        if has_transactions:
            counts = _write_transactions(conn, writer, result, chart, quarantined, summary)
        if counts.inserted + counts.changed + counts.unchanged == 0:
            counts = writer.write_activities(staged_act)
        checkpoint("mid_upsert")
        summary.quarantined = writer.quarantine(quarantined)
        writer.log_fetches(_fetch_rows(result, fetched_at or datetime.now(UTC)))
        checkpoint("before_commit")
    summary.inserted, summary.changed, summary.unchanged, summary.removed = (
        counts.inserted,
        counts.changed,
        counts.unchanged,
        counts.removed,
    )
    summary.windows = len(result.records)
    summary.failed_windows = len(result.failed)
    summary.split_windows = sum(1 for r in result.records if r.outcome == "split")
    summary.retries = sum(max(r.attempts - 1, 0) for r in result.records)
    summary.relogins = sum(r.relogins for r in result.records)
    summary.gaps = result.gaps()
    return summary


def known_accounts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [
            r[0]
            for r in conn.execute(select(s.accounts.c.account_id).order_by(s.accounts.c.account_id))
        ]
