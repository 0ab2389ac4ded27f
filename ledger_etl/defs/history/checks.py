"""Invariants as asset checks, evaluated per (month, account) partition."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import dagster as dg

from ledger_etl.capital.history import HISTORY_ENDPOINT_NAMES
from ledger_etl.defs.history.assets import ledger_entries, monthly_statement
from ledger_etl.defs.history.partitions import month_accounts
from ledger_etl.defs.resources import LedgerResource
from ledger_etl.ledger.coverage import stored_gaps
from ledger_etl.ledger.rebuild import duplicate_keys, raw_without_entry
from ledger_etl.monthly import month_bounds
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.document import statement_content_hash
from ledger_etl.statements.paths import parse_month
from ledger_etl.statements.published import PublishedStatements
from ledger_etl.statements.query import read_statement_inputs


def _partitions(context: dg.AssetCheckExecutionContext) -> list[tuple[str, str]]:
    found = month_accounts(context)
    if not found:
        context.log.info("this run names no (month, account) partition: nothing to check")
    return found


def _result(
    failures: dict[str, Any],
    detail: dict[str, Any],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not failures,
        severity=severity,
        metadata={
            "failures": dg.MetadataValue.json(failures),
            "checked": dg.MetadataValue.json(detail),
        },
    )


@dg.asset_check(
    asset=ledger_entries,
    blocking=False,
    description="Every window of the month was fetched completely (no gaps).",
)
def coverage_complete(
    context: dg.AssetCheckExecutionContext, ledger: LedgerResource
) -> dg.AssetCheckResult:
    failures: dict[str, Any] = {}
    detail = {}
    for month, account in _partitions(context):
        start, end = month_bounds(month)
        gaps = {
            endpoint: [
                f"[{g.start.isoformat()}, {g.end.isoformat()})"
                for g in stored_gaps(ledger.engine(), account, endpoint, start, end)
            ]
            for endpoint in HISTORY_ENDPOINT_NAMES
        }
        detail[f"{account}|{month}"] = "complete"
        if any(gaps.values()):
            failures[f"{account}|{month}"] = gaps
    return _result(failures, detail)


@dg.asset_check(
    asset=ledger_entries,
    description="No reference twice; every stored raw row has its ledger entry.",
)
def keys_unique(
    context: dg.AssetCheckExecutionContext, ledger: LedgerResource
) -> dg.AssetCheckResult:
    failures, detail = {}, {}
    for month, account in _partitions(context):
        start, end = month_bounds(month)
        dupes = duplicate_keys(ledger.engine(), account, start, end)
        orphans = raw_without_entry(ledger.engine(), account, start, end)
        detail[f"{account}|{month}"] = {"duplicate_references": dupes, "raw_without_entry": orphans}
        if dupes or orphans:
            failures[f"{account}|{month}"] = detail[f"{account}|{month}"]
    return _result(failures, detail)


def _build(ledger: LedgerResource, account: str, month: str):
    return build_statement(read_statement_inputs(ledger.engine(), account, parse_month(month)))


def _latest_published(ledger: LedgerResource, account: str, month: str):
    return PublishedStatements(ledger.exports()).latest(account, month)


@dg.asset_check(
    asset=monthly_statement,
    description="Published balances roll forward: this month's opening equals the closing of "
    "the account's published month before it, and its closing equals the opening of the "
    "published month after it; a month missing in between fails.",
)
def balance_rolls_forward(
    context: dg.AssetCheckExecutionContext, ledger: LedgerResource
) -> dg.AssetCheckResult:
    reader = PublishedStatements(ledger.exports())
    failures: dict[str, Any] = {}
    detail: dict[str, Any] = {}
    for month, account in _partitions(context):
        key = f"{account}|{month}"
        if reader.latest(account, month) is None:
            detail[key] = "not published"
            failures[key] = "no published statement to compare"
            continue
        this = reader.document(account, month)
        published = reader.months(account)
        before = [m for m in published if m < month]
        after = [m for m in published if m > month]
        problems = []
        compared: dict[str, Any] = {}
        if before:
            closing = reader.document(account, before[-1])["closing_balance"]
            compared["previous"] = {"month": before[-1], "closing": closing}
            problems += _roll_problems(before[-1], month, closing, this["opening_balance"])
        if after:
            opening = reader.document(account, after[0])["opening_balance"]
            compared["next"] = {"month": after[0], "opening": opening}
            problems += _roll_problems(month, after[0], this["closing_balance"], opening)
        detail[key] = compared or "the account's only published month: nothing to compare"
        if problems:
            failures[key] = {**compared, "problems": problems}
    return _result(failures, detail)


def _roll_problems(earlier: str, later: str, closing: str, opening: str) -> list[str]:
    if _month_after(earlier) != later:  # the balances differ by the missing months' movement
        return [f"months between {earlier} and {later} are not published"]
    if Decimal(closing) != Decimal(opening):
        return [f"{earlier} closes at {closing} but {later} opens at {opening}"]
    return []


def _month_after(month: str) -> str:
    _, end = month_bounds(month)
    return f"{end:%Y-%m}"


@dg.asset_check(
    asset=monthly_statement,
    blocking=True,
    description="The statement is FINAL: covered, its opening proven and its closing reconciled "
    "with the broker's balance. Blocking: what reads statements downstream waits for it.",
)
def statement_reconciles(
    context: dg.AssetCheckExecutionContext, ledger: LedgerResource
) -> dg.AssetCheckResult:
    failures, detail = {}, {}
    for month, account in _partitions(context):
        statement = _build(ledger, account, month)
        rec = statement.reconciliation
        key = f"{account}|{month}"
        detail[key] = {
            "status": rec.status,
            "statement": statement.status,
            "difference": None if rec.difference is None else str(rec.difference),
            "reason": rec.reason,
            "status_reasons": list(statement.status_reasons),
        }
        if rec.status != "RECONCILED" or statement.status != "FINAL":
            failures[key] = detail[key]
    return _result(failures, detail)


@dg.asset_check(
    asset=ledger_entries,
    additional_deps=[monthly_statement],
    description="A closed month's published statement still matches the ledger; fails when the "
    "ledger changed (late rows, corrections) and a new statement version is due.",
)
def published_statement_unchanged(
    context: dg.AssetCheckExecutionContext, ledger: LedgerResource
) -> dg.AssetCheckResult:
    failures, detail = {}, {}
    for month, account in _partitions(context):
        key = f"{account}|{month}"
        if month_bounds(month)[1] > datetime.now(UTC):
            detail[key] = "month not closed yet: no statement expected"
            continue
        published = _latest_published(ledger, account, month)
        current = statement_content_hash(_build(ledger, account, month))
        if published is None:
            detail[key] = "not published yet"
            failures[key] = "no published statement"
            continue
        detail[key] = {
            "published_version": published.version,
            "published_hash": published.content_hash,
            "current_hash": current,
        }
        if published.content_hash != current:
            failures[key] = {
                **detail[key],
                "action": "materialize monthly_statement to publish a new version",
            }
    return _result(failures, detail)


CHECKS = [
    coverage_complete,
    keys_unique,
    balance_rolls_forward,
    statement_reconciles,
    published_statement_unchanged,
]
