"""`statement.xlsx` (openpyxl write-only): Summary, Transactions, Activity, Coverage sheets.

Amounts are numeric cells with a number format that names the currency (the float of the
Decimal: Excel stores binary floats, so the exact text lives in CSV, JSON and Parquet);
instants are date cells holding naive UTC with "(UTC)" in the header. Every sheet is set up for
print (`xlsx_sheet.print_setup`: landscape, fit to width, header row on every page) and has a
frozen header row and an autofilter. Text is neutralised against formula injection and
stripped of characters XML forbids.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import BinaryIO

from openpyxl import Workbook

from ledger_etl.statements.model import Statement
from ledger_etl.statements.xlsx_sheet import Column, Sheet, cell_text, naive_utc
from ledger_etl.statements.xlsx_summary import add_balance_chart, write_summary

__all__ = ["cell_text", "write_xlsx"]
MAX_SHEET_ROWS = 1_048_576

TRANSACTION_COLUMNS: tuple[Column, ...] = (
    ("Posted at (UTC)", 24, "instant"),
    ("Reference", 18, "text"),
    ("Type", 24, "text"),
    ("Instrument", 18, "text"),
    ("Amount", 20, "money"),
    ("Currency", 9, "text"),
    ("Status", 12, "text"),
    ("Running balance", 22, "money"),
    ("Ledger account", 10, "text"),
    ("Ledger account name", 30, "text"),
    ("Deal ID", 38, "text"),
    ("Note", 40, "text"),
)
ACTIVITY_COLUMNS: tuple[Column, ...] = (
    ("Occurred at (UTC)", 24, "instant"),
    ("Type", 16, "text"),
    ("Status", 12, "text"),
    ("Actions", 24, "text"),
    ("Epic", 14, "text"),
    ("Deal ID", 38, "text"),
    ("Direction", 9, "text"),
    ("Size", 12, "decimal"),
    ("Level", 12, "decimal"),
    ("Source", 10, "text"),
    ("Deal reference", 38, "text"),
    ("Working order ID", 38, "text"),
)
COVERAGE_COLUMNS: tuple[Column, ...] = (
    ("Kind", 8, "text"),
    ("Endpoint", 13, "text"),
    ("Window start (UTC)", 24, "instant"),
    ("Window end (UTC)", 24, "instant"),
    ("Parameters", 48, "text"),
    ("HTTP status", 11, "int"),
    ("Attempts", 9, "int"),
    ("Rows", 8, "int"),
    ("Response sha256", 66, "text"),
    ("Fetched at (UTC)", 24, "instant"),
)


def _number(value: str | Decimal | None) -> float | None:
    return None if value is None else float(value)


def write_xlsx(statement: Statement, handle: BinaryIO) -> dict[str, object]:
    wb = Workbook(write_only=True)
    summary, summary_rows = write_summary(wb, statement)
    heading = f"{statement.account_id} {statement.period.label}"
    amounts: list[float] = []
    last: float | None = float(statement.opening_balance)
    rows = 0
    names = {t.key: t.name for t in statement.totals_by_ledger_account}
    sheet = first = Sheet(wb, "Transactions", TRANSACTION_COLUMNS, statement.currency, heading)
    part = 1
    for line in statement.lines:
        if sheet.rows >= MAX_SHEET_ROWS:
            sheet.finish()
            part += 1
            title = f"Transactions {part}"
            sheet = Sheet(wb, title, TRANSACTION_COLUMNS, statement.currency, heading)
        e = line.entry
        amount = float(e.amount)
        last = float(line.running_balance)
        sheet.append(
            (
                naive_utc(e.posted_at),
                cell_text(e.reference),
                cell_text(e.transaction_type),
                cell_text(e.instrument),
                amount,
                cell_text(e.currency),
                cell_text(e.status),
                last,
                cell_text(e.ledger_account),
                cell_text(names.get(e.ledger_account)),
                cell_text(e.deal_id),
                cell_text(e.note),
            )
        )
        amounts.append(amount)
        rows += 1
    sheet.finish()
    add_balance_chart(summary, summary_rows, first.ws, first.rows - 1, statement.currency)
    activity = Sheet(wb, "Activity", ACTIVITY_COLUMNS, statement.currency, heading)
    for a in statement.activity:
        activity.append(
            (
                naive_utc(a.occurred_at),
                cell_text(a.activity_type),
                cell_text(a.status),
                cell_text(a.actions),
                cell_text(a.epic),
                cell_text(a.deal_id),
                cell_text(a.direction),
                _number(a.size),
                _number(a.level),
                cell_text(a.source),
                cell_text(a.deal_reference),
                cell_text(a.working_order_id),
            )
        )
    activity.finish()
    _coverage(wb, statement, heading)
    wb.save(handle)
    return {
        "rows": rows,
        "amount_sum": repr(math.fsum(amounts)),
        "closing_balance": repr(last),
    }


def _coverage(wb: Workbook, s: Statement, heading: str) -> None:
    sheet = Sheet(wb, "Coverage", COVERAGE_COLUMNS, s.currency, heading)
    for f in s.coverage.fetches:
        sheet.append(
            (
                "fetch",
                cell_text(f.endpoint),
                naive_utc(f.window_start),
                naive_utc(f.window_end),
                cell_text(f.params),
                f.http_status,
                f.attempts,
                f.row_count,
                f.body_sha256,
                naive_utc(f.fetched_at),
            )
        )
    for g in s.coverage.gaps:
        sheet.append(
            ("gap", cell_text(g.endpoint), naive_utc(g.start), naive_utc(g.end), *(None,) * 6)
        )
    sheet.finish()
