"""`statement.xlsx` ready to print: page setup, labels that fit, dates as dates, names beside
codes, currency in the number formats; and a realistic month printed by LibreOffice."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from openpyxl import load_workbook
from pypdf import PdfReader

from ledger_etl.statements.export import publish_built
from ledger_etl.statements.xlsx_summary import summary_rows
from tests.unit.office import convert
from tests.unit.statement_month import october_statement

MAX_PAGES = 8  # a 200-entry month: a handful of pages, not dozens


def _xlsx(tmp_path: Path) -> Path:
    folder = publish_built(october_statement(), tmp_path, run_id="t", formats=("xlsx",)).folder
    return folder / "statement.xlsx"


def test_every_sheet_is_set_up_for_print(tmp_path: Path) -> None:
    wb = load_workbook(_xlsx(tmp_path))
    assert wb.sheetnames == ["Summary", "Transactions", "Activity", "Coverage"]
    for ws in wb.worksheets:
        setup = ws.page_setup
        assert setup.orientation == "landscape", ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert int(setup.fitToWidth) == 1, ws.title
        assert int(setup.fitToHeight) == (1 if ws.title == "Summary" else 0), ws.title
        assert ws.freeze_panes == "A2", ws.title
        assert "&P of &N" in ws.oddFooter.right.text, ws.title
        if ws.title != "Summary":
            assert ws.print_title_rows == "$1:$1", ws.title
        # every heading fits its column (the filter button needs room too)
        for cell in ws[1]:
            width = ws.column_dimensions[cell.column_letter].width
            assert width >= len(str(cell.value)) + 2, (ws.title, cell.value, width)


def test_summary_has_dates_names_and_currency_formats(tmp_path: Path) -> None:
    statement = october_statement()
    wb = load_workbook(_xlsx(tmp_path))
    ws = wb["Summary"]
    rows = {row[0].value: row for row in ws.iter_rows(min_row=2)}
    for label in ("Period start (UTC)", "Period end, exclusive (UTC)",
                  "Broker balance observed at (UTC)"):  # fmt: skip
        assert isinstance(rows[label][1].value, datetime) and rows[label][1].is_date, label
    assert rows["Period start (UTC)"][1].value == datetime(2025, 10, 1)
    for label in ("Opening balance", "Closing balance", "Movement", "Difference"):
        assert rows[label][1].number_format.endswith('"USD"'), label
    assert rows["Total by type: SWAP"][3].value == "Overnight financing (swaps) (6000)"
    assert rows["Total by ledger account: 4000"][3].value == "Realised trading P&L"
    assert rows["Movement"][2].value == len(statement.lines)
    labels = [c.value for c in ws["A"][1:]]
    width = ws.column_dimensions["A"].width
    assert all(len(label) <= width for label in labels)
    assert wb["Transactions"]["E2"].number_format.endswith('"USD"')
    assert len(ws._charts) == 1  # the running balance


def test_libreoffice_prints_a_month_on_a_handful_of_pages(tmp_path: Path) -> None:
    statement = october_statement()
    assert len(statement.lines) == 200
    pdf = convert(_xlsx(tmp_path / "out"), "pdf", tmp_path / "lo")
    reader = PdfReader(pdf)
    assert 1 < len(reader.pages) <= MAX_PAGES, len(reader.pages)
    first = reader.pages[0].extract_text()
    lines = [line.strip() for line in first.splitlines()]
    for row in summary_rows(statement):  # each label printed whole, not cut at its column
        assert any(line.startswith(row.label) for line in lines), (row.label, lines)
    assert "page 1 of" in first
