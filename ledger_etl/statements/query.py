"""Read one account-month of the ledger into plain frozen dataclasses.

The only statements module that touches the database. Everything is read in one transaction
(REPEATABLE READ on PostgreSQL; SQLite transactions are snapshots already), so the inputs are
one consistent state of the ledger.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Connection, Engine, func, select

from ledger_etl.capital.history import HISTORY_ENDPOINT_NAMES
from ledger_etl.capital.models import Transaction, parse_transaction
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.chart import ChartOfAccounts, load_chart, type_name
from ledger_etl.ledger.coverage import SETTLE, stored_gaps
from ledger_etl.ledger.normalize import CURRENCY_MISMATCH
from ledger_etl.statements.model import (
    ActivityRecord,
    BalanceObservation,
    FetchRecord,
    ForeignCurrencyEntry,
    Gap,
    LedgerEntry,
    ObservationWindow,
    Period,
    StatementInputs,
)
from ledger_etl.statements.paths import StatementError

ENDPOINTS = HISTORY_ENDPOINT_NAMES

OBSERVATIONS_CONSIDERED = 50  # the newest broker balances tried for a reconciliation


def list_accounts(engine: Engine) -> list[str]:
    """Every account the ledger knows, from its accounts table and its entries."""
    with engine.connect() as conn:
        known = {r[0] for r in conn.execute(select(s.accounts.c.account_id))}
        known |= {r[0] for r in conn.execute(select(s.ledger_entries.c.account_id).distinct())}
    return sorted(known)


def read_statement_inputs(
    engine: Engine, account_id: str, period: Period, chart: ChartOfAccounts | None = None
) -> StatementInputs:
    chart = chart or load_chart()
    options = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**options) as conn, conn.begin():
        account = conn.execute(
            select(s.accounts).where(s.accounts.c.account_id == account_id)
        ).first()
        entries = _entries(conn, account_id, period)
        if account is None and not entries and _balance(conn, account_id, None, None) == 0:
            raise StatementError(f"the ledger knows no account {account_id!r}")
        currency = (account.currency if account is not None else None) or _currency(entries)
        observation = _observation(conn, account_id, period)
        inputs = {
            "balance_before": _balance(conn, account_id, None, period.start),
            "balance_before_previous": _balance(conn, account_id, None, period.previous_start),
            "previous_movement": _balance(conn, account_id, period.previous_start, period.start),
            "balance_at_end": _balance(conn, account_id, None, period.end),
            "activities": _activities(conn, account_id, period),
            "foreign_currency": _foreign_currency(conn, account_id, period),
            "fetches": _fetches(conn, account_id, period),
            "skipped_balance": (
                _skipped_balance(conn, account_id) if observation is None else None
            ),
            "observation_movement": (
                _balance(conn, account_id, *sorted((period.end, observation.observed_at)))
                if observation is not None
                else None
            ),
        }
    gaps = tuple(
        Gap(endpoint, g.start, g.end)
        for endpoint in ENDPOINTS
        for g in stored_gaps(engine, account_id, endpoint, period.start, period.end)
    )
    window = None
    if observation is not None:
        window = _observation_window(
            engine, account_id, period, observation, inputs.pop("observation_movement")
        )
    inputs.pop("observation_movement", None)
    return StatementInputs(
        account_id=account_id,
        account_name=account.account_name if account is not None else None,
        currency=currency or "",
        period=period,
        entries=entries,
        gaps=gaps,
        observation=observation,
        observation_window=window,
        ledger_account_names=dict(chart.accounts),
        transaction_type_names={e.transaction_type: type_name(e.transaction_type) for e in entries},
        **inputs,
    )


def _entries(conn: Connection, account_id: str, period: Period) -> tuple[LedgerEntry, ...]:
    e = s.ledger_entries
    query = select(
        e.c.reference, e.c.posted_at, e.c.transaction_type, e.c.instrument, e.c.amount,
        e.c.currency, e.c.status, e.c.deal_id, e.c.note, e.c.ledger_account, e.c.flags,
        e.c.row_sha256,
        # The public id of the run that last changed the entry (an outer join: an entry whose
        # run is not recorded is still on the statement).
        func.coalesce(s.runs.c.run_id, ""),
    ).join_from(e, s.runs, s.runs.c.run_key == e.c.last_run_key, isouter=True).where(
        e.c.account_id == account_id, e.c.posted_at >= period.start, e.c.posted_at < period.end
    )  # fmt: skip
    rows = [LedgerEntry(*row) for row in conn.execute(query)]
    # Sorted here, not by the database, so both backends agree whatever their collation.
    rows.sort(key=lambda r: (r.posted_at, r.reference))
    return tuple(rows)


def _balance(
    conn: Connection, account_id: str, start: datetime | None, end: datetime | None
) -> Decimal:
    """Exact sum of the account's amounts with `start <= posted_at < end`."""
    e = s.ledger_entries
    query = select(s.money_sum(e.c.amount)).where(e.c.account_id == account_id)
    if start is not None:
        query = query.where(e.c.posted_at >= start)
    if end is not None:
        query = query.where(e.c.posted_at < end)
    value = conn.execute(query).scalar()
    return Decimal(0) if value is None else Decimal(value)


def _currency(entries: tuple[LedgerEntry, ...]) -> str | None:
    counts = Counter(e.currency for e in entries)
    return counts.most_common(1)[0][0] if counts else None


def _activities(conn: Connection, account_id: str, period: Period) -> tuple[ActivityRecord, ...]:
    a = s.activities
    query = select(
        a.c.activity_key, a.c.occurred_at, a.c.activity_type, a.c.status, a.c.actions, a.c.epic,
        a.c.deal_id, a.c.direction, a.c.size, a.c.level, a.c.source, a.c.deal_reference,
        a.c.working_order_id,
    ).where(
        a.c.account_id == account_id, a.c.occurred_at >= period.start,
        a.c.occurred_at < period.end,
    )  # fmt: skip
    rows = [ActivityRecord(*row) for row in conn.execute(query)]
    rows.sort(key=lambda r: (r.occurred_at, r.activity_key))
    return tuple(rows)


def _foreign_currency(
    conn: Connection, account_id: str, period: Period
) -> tuple[ForeignCurrencyEntry, ...]:
    """The period's transactions quarantined for their currency, read back from their raw rows
    (which parsed when they were quarantined: only their currency kept them out)."""
    q = s.quarantine
    query = select(q.c.raw, q.c.reason).where(
        q.c.account_id == account_id, q.c.endpoint == "transactions",
        q.c.reason.startswith(CURRENCY_MISMATCH), q.c.window_end >= period.start,
        q.c.window_start < period.end,
    )  # fmt: skip
    rows = []
    for raw, reason in conn.execute(query):
        tx = parse_transaction(json.loads(raw, parse_float=Decimal))
        if isinstance(tx, Transaction) and period.start <= tx.date_utc < period.end:
            rows.append(ForeignCurrencyEntry(
                tx.reference, tx.date_utc, tx.transaction_type, tx.size, tx.currency, reason
            ))  # fmt: skip
    rows.sort(key=lambda r: (r.posted_at, r.reference))
    return tuple(rows)


def _skipped_balance(conn: Connection, account_id: str) -> str | None:
    """The reason of the newest balance report kept in quarantine instead of observed."""
    q = s.quarantine
    query = (
        select(q.c.reason)
        .join(s.runs, s.runs.c.run_id == q.c.last_run_id)
        .where(q.c.account_id == account_id, q.c.endpoint == "accounts")
        .order_by(s.runs.c.started_at.desc(), q.c.id.desc())
        .limit(1)
    )
    return conn.execute(query).scalar()


def _fetches(conn: Connection, account_id: str, period: Period) -> tuple[FetchRecord, ...]:
    log = s.fetch_log
    query = (
        select(log, s.runs.c.run_id)
        .join_from(log, s.runs, s.runs.c.run_key == log.c.run_key)
        .where(
            log.c.account_id == account_id,
            log.c.outcome == "complete",
            log.c.window_end > period.start,
            log.c.window_start < period.end,
        )
    )
    rows = [
        FetchRecord(
            endpoint=r.endpoint,
            window_start=r.window_start,
            window_end=r.window_end,
            params=json.dumps(r.params, sort_keys=True, separators=(",", ":")),
            http_status=r.http_status,
            attempts=r.attempts,
            row_count=r.row_count,
            body_sha256=r.body_sha256,
            ids=tuple(str(i) for i in (r.ids or ())),
            fetched_at=r.fetched_at,
            run_id=r.run_id,
        )
        for r in conn.execute(query)
    ]
    rows.sort(key=lambda f: (f.endpoint, f.window_start, f.window_end, f.fetched_at, f.run_id))
    return tuple(rows)


def _observation(conn: Connection, account_id: str, period: Period) -> BalanceObservation | None:
    """The newest broker balance observation that the ledger can roll back to the period's end:
    one with no transactions gap in between (a sync of another account also records this
    account's balance, at a moment this account's transactions may not reach yet). Without such
    an observation, the newest one (the reconciliation then says what is missing)."""
    b = s.balance_observations
    rows = conn.execute(
        select(b.c.observed_at, b.c.balance, b.c.currency, b.c.run_id)
        .where(b.c.account_id == account_id)
        .order_by(b.c.observed_at.desc(), b.c.id.desc())
        .limit(OBSERVATIONS_CONSIDERED)
    ).all()
    candidates = [BalanceObservation(*row) for row in rows]
    for candidate in candidates:
        lo, hi = _between(period, candidate.observed_at.astimezone(UTC))
        if lo >= hi or not stored_gaps(conn, account_id, "transactions", lo, hi):
            return candidate
    return candidates[0] if candidates else None


def _between(period: Period, observed: datetime) -> tuple[datetime, datetime]:
    """The stretch whose transactions link an observation to the period's end, as far as a
    fetch can prove it (see `_observation_window`)."""
    if observed >= period.end:
        return period.end, (observed - SETTLE).replace(microsecond=0)
    return observed.replace(microsecond=0), period.end


def _observation_window(
    engine: Engine,
    account_id: str,
    period: Period,
    observation: BalanceObservation,
    movement: Decimal,
) -> ObservationWindow:
    """Entries and transaction coverage between the period's end and the observation.

    A fetch only proves coverage up to `SETTLE` before it was made (rows can arrive late), so
    the last stretch before an observation taken at sync time can never be proven complete:
    it is reported as `unchecked_from`, and the rows the ledger does hold there are counted.
    """
    observed = observation.observed_at.astimezone(UTC)
    lo, hi = _between(period, observed)
    unchecked = max(hi, period.end) if observed > period.end else None
    gaps = (
        tuple(
            Gap("transactions", g.start, g.end)
            for g in stored_gaps(engine, account_id, "transactions", lo, hi)
        )
        if lo < hi
        else ()
    )
    return ObservationWindow(movement, gaps, unchecked)
