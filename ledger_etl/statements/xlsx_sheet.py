"""The sheet machinery of `statement.xlsx`: typed write-only sheets set up for print.

Every sheet prints landscape on A4, scaled to the page's width and as many pages long as it
needs (fitToWidth=1, fitToHeight=0), with its header row repeated on every page, the sheet's
name, account and period in the page header and "page N of M" in the footer. The header row is
frozen and filtered, and each column is at least as wide as its heading. Amounts carry the
account's currency in their number format, so a printed page needs no legend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.worksheet import Worksheet

from ledger_etl.statements.writers_csv import safe_text

DECIMAL_FORMAT = "0.########"
INSTANT_FORMAT = "yyyy-mm-dd hh:mm:ss.000"
# A heading's width in character units: its text, then room for the autofilter button.
FILTER_BUTTON = 3
Column = tuple[str, int, str]  # heading, minimum width, kind


def cell_text(value: str | None) -> str | None:
    if not value:
        return None
    return safe_text(ILLEGAL_CHARACTERS_RE.sub("", value))


def naive_utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


def money_format(currency: str | None) -> str:
    """`#,##0.00###### "USD"` (negative with a minus): up to 8 decimals, never rounded away
    in display; the code is reduced to letters and digits so it cannot break the format."""
    code = re.sub(r"[^A-Za-z0-9]", "", currency or "")[:8]
    suffix = f' "{code}"' if code else ""
    return f"#,##0.00######{suffix};-#,##0.00######{suffix}"


def header_text(value: str) -> str:
    """Text for a page header or footer, where `&` starts a code."""
    return value.replace("&", "&&")


def print_setup(
    ws: Any, title: str, widths: Sequence[float], *, title_rows: str | None, pages_tall: int = 0
) -> None:
    """Page setup and column widths; must run before the first row of a write-only sheet.
    `pages_tall` 0 prints as many pages as the rows need; the Summary asks for one."""
    for index, width in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(index)].width = width
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = Worksheet.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = pages_tall
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_margins = PageMargins(left=0.4, right=0.4, top=0.6, bottom=0.6, header=0.3, footer=0.3)
    if title_rows:
        ws.print_title_rows = title_rows
    ws.oddHeader.left.text = header_text(title)
    ws.oddFooter.right.text = "page &P of &N"
    ws.freeze_panes = "A2"


class Sheet:
    """A write-only sheet with typed columns; styled cells are reused row after row, which is
    safe because a write-only sheet serialises each row as soon as it is appended."""

    def __init__(
        self, wb: Workbook, title: str, columns: Sequence[Column], currency: str, heading: str
    ) -> None:
        self.ws = wb.create_sheet(title)
        self.kinds = [kind for _, _, kind in columns]
        widths = [max(width, len(name) + FILTER_BUTTON) for name, width, _ in columns]
        print_setup(self.ws, f"{heading} · {title}", widths, title_rows="1:1")
        formats = {
            "money": money_format(currency),
            "decimal": DECIMAL_FORMAT,
            "instant": INSTANT_FORMAT,
        }
        self.cells: list[WriteOnlyCell | None] = []
        for kind in self.kinds:
            if kind in formats:
                cell = WriteOnlyCell(self.ws)
                cell.number_format = formats[kind]
                self.cells.append(cell)
            else:
                self.cells.append(None)
        self.ws.append([heading_cell(self.ws, name) for name, _, _ in columns])
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


_BOLD = Font(bold=True)
_WRAP = Alignment(wrap_text=True, vertical="top")


def heading_cell(ws: Any, text: str) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=text)
    cell.font = _BOLD
    return cell


def wrapped_cell(ws: Any, text: str | None) -> WriteOnlyCell | None:
    """Long text (reasons, notes) wraps inside its column rather than running off the page."""
    if text is None:
        return None
    cell = WriteOnlyCell(ws, value=text)
    cell.alignment = _WRAP
    return cell
