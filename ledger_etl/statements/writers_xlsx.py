"""`statement.xlsx` (openpyxl write-only): Summary, Transactions, Activity, Coverage sheets.

Amounts are numeric cells with a number format (the float of the Decimal: Excel stores binary
floats, so the exact text lives in CSV, JSON and Parquet); instants are date cells holding naive
UTC with "(UTC)" in the header. Every sheet has a frozen header row, an autofilter and set column
widths. Text is neutralised against formula injection and stripped of characters XML forbids.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from ledger_etl.statements.document import iso
from ledger_etl.statements.model import Statement
from ledger_etl.statements.writers_csv import safe_text

MONEY_FORMAT = "#,##0.00######;-#,##0.00######"
DECIMAL_FORMAT = "0.########"
INSTANT_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
MAX_SHEET_ROWS = 1_048_576

TRANSACTION_COLUMNS = (
    ("Posted at (UTC)", 24, "instant"),
    ("Reference", 18, "text"),
    ("Type", 20, "text"),
    ("Instrument", 18, "text"),
    ("Amount", 16, "money"),
    ("Currency", 9, "text"),
    ("Status", 12, "text"),
    ("Running balance", 18, "money"),
    ("Ledger account", 10, "text"),
    ("Ledger account name", 30, "text"),
    ("Deal ID", 38, "text"),
    ("Note", 40, "text"),
)
ACTIVITY_COLUMNS = (
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
COVERAGE_COLUMNS = (
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


def cell_text(value: str | None) -> str | None:
    if not value:
        return None
    return safe_text(ILLEGAL_CHARACTERS_RE.sub("", value))


def naive_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


class _Sheet:
    """A write-only sheet with typed columns; styled cells are reused row after row, which is
    safe because a write-only sheet serialises each row as soon as it is appended."""

    def __init__(self, wb: Workbook, title: str, columns: Sequence[tuple[str, int, str]]) -> None:
        self.ws = wb.create_sheet(title)
        self.kinds = [kind for _, _, kind in columns]
        for index, (_, width, _) in enumerate(columns, 1):
            self.ws.column_dimensions[get_column_letter(index)].width = width
        self.ws.freeze_panes = "A2"
        self.cells: list[WriteOnlyCell | None] = []
        for kind in self.kinds:
            if kind in ("money", "decimal", "instant"):
                cell = WriteOnlyCell(self.ws)
                cell.number_format = {
                    "money": MONEY_FORMAT,
                    "decimal": DECIMAL_FORMAT,
                    "instant": INSTANT_FORMAT,
                }[kind]
                self.cells.append(cell)
            else:
                self.cells.append(None)
        bold = Font(bold=True)
        heads = []
        for title_, _, _ in columns:
            cell = WriteOnlyCell(self.ws, value=title_)
            cell.font = bold
            heads.append(cell)
        self.ws.append(heads)
        self.rows = 1

    def append(self, values: Iterable[Any]) -> None:
        row = []
        for value, cell in zip(values, self.cells, strict=True):
            if value is None or cell is None:
                row.append(value)
            else:
                cell.value = value
                row.append(cell)
        self.ws.append(row)
        self.rows += 1

    def finish(self) -> None:
        last = get_column_letter(len(self.kinds))
        self.ws.auto_filter.ref = f"A1:{last}{max(self.rows, 2)}"


def _number(value: str | Decimal | None) -> float | None:
    return None if value is None else float(value)


def write_xlsx(statement: Statement, handle: BinaryIO) -> dict[str, object]:
    wb = Workbook(write_only=True)
    _summary(wb, statement)
    amounts: list[float] = []
    last: float | None = float(statement.opening_balance)
    rows = 0
    names = {t.key: t.name for t in statement.totals_by_ledger_account}
    sheet = _Sheet(wb, "Transactions", TRANSACTION_COLUMNS)
    part = 1
    for line in statement.lines:
        if sheet.rows >= MAX_SHEET_ROWS:
            sheet.finish()
            part += 1
            sheet = _Sheet(wb, f"Transactions {part}", TRANSACTION_COLUMNS)
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
    activity = _Sheet(wb, "Activity", ACTIVITY_COLUMNS)
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
    _coverage(wb, statement)
    wb.save(handle)
    return {
        "rows": rows,
        "amount_sum": repr(math.fsum(amounts)),
        "closing_balance": repr(last),
    }


def _summary(wb: Workbook, s: Statement) -> None:
    sheet = _Sheet(
        wb, "Summary", (("Item", 34, "text"), ("Value", 44, "any"), ("Count", 10, "int"))
    )

    def amount(value: Decimal | None) -> Any:
        if value is None:
            return None
        cell = WriteOnlyCell(sheet.ws, value=float(value))
        cell.number_format = MONEY_FORMAT
        return cell

    r = s.reconciliation
    rows: list[tuple[Any, Any, Any]] = [
        ("Account", cell_text(s.account_id), None),
        ("Account name", cell_text(s.account_name), None),
        ("Currency", cell_text(s.currency), None),
        ("Period", s.period.label, None),
        ("Period start (UTC)", iso(s.period.start), None),
        ("Period end, exclusive (UTC)", iso(s.period.end), None),
        ("Status", s.status, None),
        (
            "Why provisional",
            cell_text("; ".join(s.status_reasons)) if s.status_reasons else None,
            None,
        ),
        ("Version", s.version, None),
        ("Opening balance", amount(s.opening_balance), None),
        ("Closing balance", amount(s.closing_balance), None),
        ("Movement", amount(s.movement), len(s.lines)),
        ("Reconciliation", r.status, None),
        ("Broker balance observed at (UTC)", iso(r.observed_at), None),
        ("Broker balance observed", amount(r.observed_balance), None),
        ("Implied closing balance", amount(r.implied_closing), None),
        ("Difference", amount(r.difference), None),
        ("Reconciliation note", cell_text(r.reason), None),
        ("Coverage gaps", len(s.coverage.gaps), None),
        ("Window fetches", len(s.coverage.fetches), None),
    ]
    for t in s.totals_by_type:
        rows.append((cell_text(f"Total by type: {t.key}"), amount(t.amount), t.count))
    for t in s.totals_by_ledger_account:
        label = cell_text(f"Total by ledger account: {t.key} {t.name}")
        rows.append((label, amount(t.amount), t.count))
    for row in rows:
        sheet.ws.append(list(row))
        sheet.rows += 1
    sheet.finish()


def _coverage(wb: Workbook, s: Statement) -> None:
    sheet = _Sheet(wb, "Coverage", COVERAGE_COLUMNS)
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
