"""The Summary sheet of `statement.xlsx`: one labelled row per fact, totals with their chart of
accounts names, and a running-balance chart.

Column A holds the labels (`crosscheck` reads "Opening balance" and "Closing balance" there,
their values in column B). Instants are date cells (naive UTC, "(UTC)" in the label); amounts
are numbers formatted with the currency; column widths fit the longest label and value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import LineChart, Reference

from ledger_etl.statements.document import type_account_names
from ledger_etl.statements.model import Statement
from ledger_etl.statements.xlsx_sheet import (
    INSTANT_FORMAT,
    cell_text,
    heading_cell,
    money_format,
    naive_utc,
    print_setup,
    wrapped_cell,
)

HEADINGS = ("Item", "Value", "Count", "Chart of accounts name")
VALUE_WIDTH = 44  # long text wraps inside it
MONEY_WIDTH = 28


@dataclass(frozen=True)
class Row:
    label: str
    value: Any = None  # str, int, Decimal (money) or datetime (instant)
    count: int | None = None
    name: str | None = None


def summary_rows(s: Statement) -> list[Row]:
    r = s.reconciliation
    reasons = "; ".join(s.status_reasons) if s.status_reasons else None
    rows = [
        Row("Account", s.account_id),
        Row("Account name", s.account_name),
        Row("Currency", s.currency),
        Row("Period", s.period.label),
        Row("Period start (UTC)", s.period.start),
        Row("Period end, exclusive (UTC)", s.period.end),
        Row("Status", s.status),
        Row("Why provisional", reasons),
        Row("Version", s.version),
        Row("Opening balance", s.opening_balance),
        Row("Closing balance", s.closing_balance),
        Row("Movement", s.movement, len(s.lines)),
        Row("Reconciliation", r.status),
        Row("Broker balance observed at (UTC)", r.observed_at),
        Row("Broker balance observed", r.observed_balance),
        Row("Implied closing balance", r.implied_closing),
        Row("Difference", r.difference),
        Row("Reconciliation note", r.reason),
        Row("Coverage gaps", len(s.coverage.gaps)),
        Row("Window fetches", len(s.coverage.fetches)),
        Row("Foreign-currency entries (not in balances)", len(s.foreign_currency_entries)),
    ]
    names = type_account_names(s)
    rows += [
        Row(f"Total by type: {t.key}", t.amount, t.count, names.get(t.key))
        for t in s.totals_by_type
    ]
    rows += [
        Row(f"Total by ledger account: {t.key}", t.amount, t.count, t.name)
        for t in s.totals_by_ledger_account
    ]
    return rows


def _width(texts: list[str | None], floor: int) -> float:
    """Characters of the longest text, widened for proportional fonts, which run wider than
    the spreadsheet's width unit on capitals and digits."""
    longest = max((len(t) for t in texts if t), default=0)
    return max(floor, round(longest * 1.15 + 2))


def write_summary(wb: Workbook, s: Statement) -> tuple[Any, int]:
    """The Summary sheet (first in the workbook) and its row count; the chart is added once
    the Transactions sheet it plots exists."""
    ws = wb.create_sheet("Summary")
    rows = summary_rows(s)
    labels = [cell_text(row.label) for row in rows]
    names = [cell_text(row.name) for row in rows]
    widths = (
        _width([*labels, HEADINGS[0]], 12),
        VALUE_WIDTH,
        len(HEADINGS[2]) + 2,
        _width([*names, HEADINGS[3]], 16),
    )
    title = f"{s.account_id} {s.period.label} · Summary"
    # Bounded (a row per fact, type and account, and the chart): it prints on one page.
    print_setup(ws, title, widths, title_rows=None, pages_tall=1)
    ws.append([heading_cell(ws, heading) for heading in HEADINGS])
    money = money_format(s.currency)
    for row, label, name in zip(rows, labels, names, strict=True):
        ws.append([label, _value(ws, row.value, money), row.count, name])
    return ws, len(rows) + 1


def _value(ws: Any, value: Any, money: str) -> Any:
    if isinstance(value, Decimal):
        cell = WriteOnlyCell(ws, value=float(value))
        cell.number_format = money
        return cell
    if isinstance(value, datetime):
        cell = WriteOnlyCell(ws, value=naive_utc(value))
        cell.number_format = INSTANT_FORMAT
        return cell
    if isinstance(value, str):
        return wrapped_cell(ws, cell_text(value))
    return value


def add_balance_chart(
    summary: Any, below: int, transactions: Any, plotted: int, currency: str
) -> None:
    """A line of the running balance (column H of the first Transactions sheet, `plotted`
    rows), below the summary's `below` rows."""
    if plotted < 1:
        return
    chart = LineChart()
    chart.title = f"Running balance ({currency})"
    chart.legend = None
    chart.height, chart.width = 7.0, 24.0
    chart.y_axis.title = currency
    chart.y_axis.numFmt = "#,##0"
    chart.x_axis.title = "Entry"
    chart.add_data(Reference(transactions, min_col=8, min_row=2, max_row=plotted + 1))
    summary.add_chart(chart, f"A{below + 2}")
