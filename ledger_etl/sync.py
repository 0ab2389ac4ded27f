"""Sync: fetch both history endpoints for a range and store them. Shared by CLI and Dagster."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.history import HISTORY_ENDPOINTS, FetchRecord, fetch_history
from ledger_etl.capital.models import Account
from ledger_etl.capital.windows import Window, plan_windows
from ledger_etl.errors import InputError
from ledger_etl.ledger.chart import ChartOfAccounts, load_chart
from ledger_etl.ledger.db import upgrade
from ledger_etl.ledger.ingest import (
    IngestSummary,
    finish_run,
    ingest_history,
    record_accounts,
    start_run,
)
from ledger_etl.ledger.provenance import claim_accounts
from ledger_etl.provenance import api_source

ENDPOINTS = HISTORY_ENDPOINTS
_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")  # ASCII digits: \d takes any script's
FIRST_DAY = datetime(1970, 1, 1, tzinfo=UTC)
LAST_DAY = datetime(9999, 1, 1, tzinfo=UTC)


class SyncError(InputError):
    """A sync that cannot start (bad range, unknown account); the message says what to fix."""


@dataclass
class AccountSync:
    account_id: str
    currency: str | None
    endpoints: dict[str, IngestSummary] = field(default_factory=dict)
    balance_skipped: str | None = None  # why this sync recorded no balance observation

    @property
    def failed_windows(self) -> int:
        return sum(s.failed_windows for s in self.endpoints.values())


@dataclass
class SyncReport:
    run_id: str
    start: datetime
    end: datetime
    accounts: list[AccountSync]
    server_time: datetime
    # Balances the API reported that could not be observed, by account (listed ones included).
    balances_skipped: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(a.failed_windows == 0 for a in self.accounts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "ok": self.ok,
            "accounts": {
                a.account_id: {k: v.as_dict() for k, v in a.endpoints.items()}
                for a in self.accounts
            },
            "balances_skipped": dict(self.balances_skipped),
        }


def utc_day(value: str) -> datetime:
    """`YYYY-MM-DD` (ASCII digits, 1970 to 9998) -> that day's 00:00 UTC."""
    shown = repr(value[:80])
    if not _DAY.match(value):
        raise SyncError(f"dates are YYYY-MM-DD with ASCII digits, got {shown}")
    try:
        parsed = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise SyncError(f"dates are YYYY-MM-DD, got {shown} (no such day)") from None
    if not FIRST_DAY <= parsed < LAST_DAY:
        raise SyncError(
            f"date {shown} is out of range: history is fetched from 1970-01-01 to 9998-12-31"
        )
    return parsed


def select_accounts(available: Sequence[Account], wanted: Sequence[str] | None) -> list[Account]:
    if not wanted:
        return list(available)
    by_id = {a.account_id: a for a in available}
    unknown = [w for w in wanted if w not in by_id]
    if unknown:
        raise SyncError(
            f"unknown account(s) {', '.join(unknown)}; the API lists {', '.join(by_id) or 'none'}"
        )
    return [by_id[w] for w in wanted]


def planned_windows(start: datetime, end: datetime, accounts: int) -> int:
    """The top-level windows a sync of `[start, end)` fetches: each endpoint's tiles plus its
    edge probe (see `capital.history.fetch_history`), per account. Split halves come on top."""
    per_account = sum(len(plan_windows(start, end, spec.max_span)) + 1 for spec in ENDPOINTS)
    return per_account * accounts


def sync_range(
    client: CapitalClient,
    engine: Engine,
    start: datetime,
    end: datetime,
    account_ids: Sequence[str] | None = None,
    *,
    chart: ChartOfAccounts | None = None,
    on_window: Callable[[FetchRecord], None] | None = None,
    split_threshold: int | None = None,
    kind: str = "sync",
    run_params: dict[str, Any] | None = None,
    endpoints: Sequence[str] | None = None,
    ranges: Callable[[str, str, datetime], list[Window]] | None = None,
    reset_source: bool = False,
) -> SyncReport:
    """Fetch `[start, end)` of both endpoints for the accounts and upsert; never raises for a
    failed window (it is recorded, shows as a gap, and makes `report.ok` false).

    `endpoints` limits the sync to some endpoints; `ranges(account, endpoint, server_now)`
    narrows what is fetched inside `[start, end)` (e.g. only gaps and the last days);
    `split_threshold` overrides the client's (see `capital.history`).

    Every account the API lists is claimed for the client's source (`client.source`, else its
    URL and login) before anything is written: accounts this ledger holds from another source
    are refused (`SourceMismatchError`), or with `reset_source` emptied and filled again.
    """
    if not start < end:
        raise SyncError(
            f"the range is empty: from {start:%Y-%m-%d} must be before to {end:%Y-%m-%d}"
        )
    chart = chart or load_chart()
    upgrade(engine)
    server_now = client.server_time()
    accounts = client.accounts()
    chosen = select_accounts(accounts, account_ids)
    params = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "accounts": [a.account_id for a in chosen],
        **(run_params or {}),
    }
    run_id = start_run(engine, kind, params)
    report = SyncReport(run_id, start, end, [], server_now)
    try:
        source = client.source or api_source(client.base_url, client.identifier)
        claim_accounts(engine, run_id, [a.account_id for a in accounts], source, reset=reset_source)
        # A balance observation is only of use with the transactions that lead to it: a sync
        # without them records none, so the newest observation is always one its own
        # transactions fetch can roll back.
        observe = endpoints is None or "transactions" in endpoints
        report.balances_skipped = record_accounts(
            engine, run_id, accounts, server_now, observe_balances=observe
        )
        for account in chosen:
            entry = AccountSync(
                account.account_id,
                account.currency,
                balance_skipped=report.balances_skipped.get(account.account_id),
            )
            report.accounts.append(entry)
            for spec in ENDPOINTS:
                if endpoints is not None and spec.name not in endpoints:
                    continue
                pieces = (
                    ranges(account.account_id, spec.name, server_now)
                    if ranges
                    else [Window(start, end)]
                )
                merged = IngestSummary(account.account_id, spec.name)
                for piece in pieces:
                    result = fetch_history(
                        client,
                        account.account_id,
                        spec,
                        piece.start,
                        piece.end,
                        split_threshold=split_threshold,
                        on_window=on_window,
                    )
                    merged.merge(
                        ingest_history(engine, run_id, result, chart, fetched_at=server_now)
                    )
                entry.endpoints[spec.name] = merged
    except BaseException as exc:
        finish_run(engine, run_id, "failed", {**report.as_dict(), "error": type(exc).__name__})
        raise
    finish_run(engine, run_id, "succeeded" if report.ok else "incomplete", report.as_dict())
    return report


def last_complete_months(now: datetime, count: int) -> list[tuple[datetime, datetime]]:
    """The `count` most recent whole calendar months before `now`, oldest first."""
    first_of_this = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    months = []
    end = first_of_this
    for _ in range(count):
        start = (end - timedelta(days=1)).replace(day=1)
        months.append((start, end))
        end = start
    return list(reversed(months))
