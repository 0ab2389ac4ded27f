"""The statement as JSON-native data, and its content hash.

`header(statement)` is every part of `statement.json` except `entries`; `entry_doc(line)` is one
entry. Amounts are decimal strings, instants ISO 8601 UTC with a `Z`.

The content hash covers what the statement says (account, period, status, balances, entries,
totals, activity, the reconciliation verdict and the coverage gaps), not the evidence collected
for it (which fetches, when observed) nor generation metadata (version, diff, build time). A
re-sync that changes nothing therefore publishes nothing new. The hash is computed from these
JSON documents, so `verify` can recompute it from a published `statement.json`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledger_etl.ledger.schema import SUM_CONTEXT
from ledger_etl.statements.model import (
    SCHEMA_VERSION,
    ActivityRecord,
    FetchRecord,
    ForeignCurrencyEntry,
    Gap,
    Statement,
    StatementDiff,
    StatementLine,
    Total,
)

# Keys of the header that the content hash covers; `reconciliation` only by these fields.
CONTENT_KEYS = (
    "schema_version",
    "account_id",
    "currency",
    "period_start",
    "period_end",
    "status",
    "opening_balance",
    "closing_balance",
    "movement",
    "totals_by_type",
    "totals_by_ledger_account",
    "activity",
)
RECONCILIATION_CONTENT_KEYS = ("status", "difference")


def iso(value: datetime | None) -> str | None:
    """`2025-06-01T00:00:00.000Z`: UTC, milliseconds (microseconds only when they are needed)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    spec = "microseconds" if value.microsecond % 1000 else "milliseconds"
    return value.replace(tzinfo=None).isoformat(timespec=spec) + "Z"


_CENTS = Decimal("0.01")


def money(value: Decimal | None) -> str | None:
    """Plain decimal text with at least two decimals (`20.00`, `-0.50`, `0.00012345`): widening
    to cents adds zeros only, it never rounds."""
    if value is None:
        return None
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent > -2:
        value = value.quantize(_CENTS, context=SUM_CONTEXT)  # 38 digits: never rounded
    return format(value, "f")


def entry_doc(line: StatementLine) -> dict[str, Any]:
    e = line.entry
    return {
        "reference": e.reference,
        "posted_at": iso(e.posted_at),
        "type": e.transaction_type,
        "instrument": e.instrument,
        "amount": format(e.amount, "f"),
        "currency": e.currency,
        "status": e.status,
        "running_balance": format(line.running_balance, "f"),
        "ledger_account": e.ledger_account,
        "deal_id": e.deal_id,
        "note": e.note,
        "flags": e.flags,
    }


def _total(total: Total) -> dict[str, Any]:
    return {
        "key": total.key,
        "name": total.name,
        "count": total.count,
        "amount": money(total.amount),
    }


def activity_doc(a: ActivityRecord) -> dict[str, Any]:
    return {
        "occurred_at": iso(a.occurred_at),
        "type": a.activity_type,
        "status": a.status,
        "actions": a.actions,
        "epic": a.epic,
        "deal_id": a.deal_id,
        "direction": a.direction,
        "size": a.size,
        "level": a.level,
        "source": a.source,
        "deal_reference": a.deal_reference,
        "working_order_id": a.working_order_id,
        "activity_key": a.activity_key,
    }


def fetch_doc(f: FetchRecord, with_ids: bool = False) -> dict[str, Any]:
    doc = {
        "endpoint": f.endpoint,
        "window_start": iso(f.window_start),
        "window_end": iso(f.window_end),
        "params": json.loads(f.params),
        "http_status": f.http_status,
        "attempts": f.attempts,
        "row_count": f.row_count,
        "body_sha256": f.body_sha256,
        "fetched_at": iso(f.fetched_at),
        "run_id": f.run_id,
    }
    if with_ids:
        doc["ids"] = list(f.ids)
    return doc


def gap_doc(g: Gap) -> dict[str, Any]:
    return {"endpoint": g.endpoint, "start": iso(g.start), "end": iso(g.end)}


def diff_doc(diff: StatementDiff | None) -> dict[str, Any] | None:
    if diff is None:
        return None
    return {
        "previous_version": diff.previous_version,
        "previous_content_hash": diff.previous_content_hash,
        "added": list(diff.added),
        "changed": [
            {
                "reference": c.reference,
                "fields": {name: {"before": a, "after": b} for name, a, b in c.fields},
            }
            for c in diff.changed
        ],
        "removed": list(diff.removed),
        "opening_balance_delta": money(diff.opening_delta),
        "closing_balance_delta": money(diff.closing_delta),
    }


def header(statement: Statement) -> dict[str, Any]:
    """Everything in `statement.json` but the entries, in the file's key order."""
    s = statement
    r = s.reconciliation
    return {
        "schema_version": SCHEMA_VERSION,
        "account_id": s.account_id,
        "account_name": s.account_name,
        "currency": s.currency,
        "period": s.period.label,
        "period_start": iso(s.period.start),
        "period_end": iso(s.period.end),
        "status": s.status,
        "status_reasons": list(s.status_reasons),
        "opening_balance": money(s.opening_balance),
        "closing_balance": money(s.closing_balance),
        "movement": money(s.movement),
        "entry_count": len(s.lines),
        "totals_by_type": [_total(t) for t in s.totals_by_type],
        "totals_by_ledger_account": [_total(t) for t in s.totals_by_ledger_account],
        "activity": [activity_doc(a) for a in s.activity],
        "foreign_currency_entries": [foreign_doc(f) for f in s.foreign_currency_entries],
        "reconciliation": {
            "status": r.status,
            "closing_balance": money(r.closing_balance),
            "observed_at": iso(r.observed_at),
            "observed_balance": money(r.observed_balance),
            "movement_between": money(r.movement_between),
            "implied_closing": money(r.implied_closing),
            "difference": money(r.difference),
            "reason": r.reason,
            "coverage_unproven_from": iso(r.unproven_from),
        },
        "coverage": {
            "complete": s.coverage.complete,
            "fetches": [fetch_doc(f) for f in s.coverage.fetches],
            "gaps": [gap_doc(g) for g in s.coverage.gaps],
        },
        "ledger_state": {
            "entry_count": s.ledger_state.entry_count,
            "rows_digest": s.ledger_state.rows_digest,
            "max_last_run_id": s.ledger_state.max_last_run_id,
        },
        "version": s.version,
        "diff": diff_doc(s.diff),
    }


def foreign_doc(f: ForeignCurrencyEntry) -> dict[str, Any]:
    return {
        "reference": f.reference,
        "posted_at": iso(f.posted_at),
        "type": f.transaction_type,
        "amount": format(f.amount, "f"),
        "currency": f.currency,
        "reason": f.reason,
    }


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_hash(head: dict[str, Any], entries: Iterable[dict[str, Any]]) -> str:
    """sha256 of the canonical JSON of the statement's content (see the module docstring)."""
    content = {key: head.get(key) for key in CONTENT_KEYS}
    recon = head.get("reconciliation") or {}
    content["reconciliation"] = {key: recon.get(key) for key in RECONCILIATION_CONTENT_KEYS}
    content["gaps"] = (head.get("coverage") or {}).get("gaps")
    if head.get("status_reasons"):  # absent when FINAL, so a FINAL statement's hash is as before
        content["status_reasons"] = head["status_reasons"]
    if head.get("foreign_currency_entries"):  # only when present: older hashes stay valid
        content["foreign_currency_entries"] = head["foreign_currency_entries"]
    digest = hashlib.sha256(b"statement-content-v1\n")
    digest.update(canonical(content))
    digest.update(b"\n")
    for doc in entries:
        digest.update(canonical(doc))
        digest.update(b"\n")
    return digest.hexdigest()


def statement_content_hash(statement: Statement) -> str:
    return content_hash(header(statement), (entry_doc(line) for line in statement.lines))


def type_account_names(statement: Statement) -> dict[str, str]:
    """Each transaction type's human name: the chart-of-accounts account(s) its entries posted
    to, as `Name (code)`; a type that posted to several accounts names them all."""
    names = {t.key: t.name for t in statement.totals_by_ledger_account}
    codes: dict[str, list[str]] = {}
    for line in statement.lines:
        found = codes.setdefault(line.entry.transaction_type, [])
        if line.entry.ledger_account not in found:
            found.append(line.entry.ledger_account)
    return {
        kind: ", ".join(f"{names.get(code, code)} ({code})" for code in found)
        for kind, found in codes.items()
    }
