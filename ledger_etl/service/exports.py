"""Ledger entries as JSON, CSV and XLSX: one writer per format, for the API and the CLI.

Every writer consumes `ledger.queries.stream`, so memory stays flat whatever the range. Amounts
are exact decimal text in JSON and CSV; in XLSX an amount is a number when the float Excel
stores prints back as the same decimal, and text otherwise (never a rounded number). Text cells
are neutralised against formula injection (`statements.writers_csv.safe_text`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from ledger_etl.ledger.chart import type_name
from ledger_etl.ledger.queries import EntryFilter, EntryRow
from ledger_etl.statements.document import iso, money
from ledger_etl.statements.paths import atomic_write
from ledger_etl.statements.writers_csv import safe_text
from ledger_etl.statements.xlsx_sheet import DECIMAL_FORMAT, cell_text, naive_utc

FORMATS = ("json", "csv", "xlsx")
MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
XLSX_MAX_ROWS = 1_048_575  # a sheet's rows less the header
HEADINGS = (
    "account_id", "posted_at", "reference", "type", "type_name", "instrument", "amount",
    "currency", "status", "ledger_account", "deal_id", "note", "flags",
)  # fmt: skip
CHUNK = 64 * 1024


def entry_json(row: EntryRow) -> dict[str, Any]:
    return {
        "account_id": row.account_id,
        "posted_at": iso(row.posted_at),
        "reference": row.reference,
        "type": row.transaction_type,
        "type_name": type_name(row.transaction_type),
        "instrument": row.instrument,
        "amount": money(row.amount),
        "currency": row.currency,
        "status": row.status,
        "ledger_account": row.ledger_account,
        "deal_id": row.deal_id,
        "note": row.note,
        "flags": [f for f in row.flags.split(",") if f],
    }


def filter_json(flt: EntryFilter) -> dict[str, Any]:
    return {
        "account_id": flt.account_id,
        "from": iso(flt.start),
        "to": iso(flt.end),
        "types": list(flt.types),
    }


def iter_json(flt: EntryFilter, rows: Iterable[EntryRow]) -> Iterator[bytes]:
    """One JSON document: the filter, then `entries`, one entry per line."""
    head = json.dumps({"filter": filter_json(flt)})[:-1]
    buffer = [head.encode(), b', "entries": [']
    size = 0
    separator = b"\n  "
    for row in rows:
        line = separator + json.dumps(entry_json(row), ensure_ascii=False).encode()
        buffer.append(line)
        size += len(line)
        separator = b",\n  "
        if size >= CHUNK:
            yield b"".join(buffer)
            buffer, size = [], 0
    buffer.append(b"\n]}\n")
    yield b"".join(buffer)


def _csv_cells(row: EntryRow) -> tuple[str | None, ...]:
    return (
        safe_text(row.account_id),
        iso(row.posted_at),
        safe_text(row.reference),
        safe_text(row.transaction_type),
        safe_text(type_name(row.transaction_type)),
        safe_text(row.instrument),
        money(row.amount),  # a plain number: never through the text sanitiser
        safe_text(row.currency),
        safe_text(row.status),
        safe_text(row.ledger_account),
        safe_text(row.deal_id),
        safe_text(row.note),
        safe_text(row.flags),
    )


def iter_csv(rows: Iterable[EntryRow]) -> Iterator[bytes]:
    """UTF-8 CSV with a header row, in chunks of about 64 KiB."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(HEADINGS)
    for row in rows:
        writer.writerow(_csv_cells(row))
        if text.tell() >= CHUNK:
            yield text.getvalue().encode()
            text.seek(0)
            text.truncate()
    yield text.getvalue().encode()


def exact_number(amount: Decimal) -> float | None:
    """The float of `amount` when it prints back as the same decimal, else None."""
    value = float(amount)
    return value if Decimal(repr(value)) == amount else None


def write_xlsx(flt: EntryFilter, rows: Iterable[EntryRow], handle: BinaryIO) -> int:
    """A write-only workbook with one `Entries` sheet; returns the rows written."""
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("Entries")
    ws.freeze_panes = "A2"
    ws.append(list(HEADINGS))
    instant = WriteOnlyCell(ws)
    instant.number_format = "yyyy-mm-dd hh:mm:ss.000"
    amount_cell = WriteOnlyCell(ws)
    amount_cell.number_format = DECIMAL_FORMAT
    written = 0
    for row in rows:
        if written >= XLSX_MAX_ROWS:
            raise ValueError("more entries than one sheet holds: narrow the range or use CSV")
        instant.value = naive_utc(row.posted_at)
        number = exact_number(row.amount)
        if number is None:
            amount: Any = money(row.amount)  # text keeps every digit
        else:
            amount_cell.value = number
            amount = amount_cell
        ws.append([
            cell_text(row.account_id), instant, cell_text(row.reference),
            cell_text(row.transaction_type), cell_text(type_name(row.transaction_type)),
            cell_text(row.instrument), amount, cell_text(row.currency), cell_text(row.status),
            cell_text(row.ledger_account), cell_text(row.deal_id), cell_text(row.note),
            cell_text(row.flags),
        ])  # fmt: skip
        written += 1
    wb.save(handle)
    return written


def write_file(flt: EntryFilter, rows: Iterable[EntryRow], fmt: str, path: Path) -> None:
    """Write an export to `path` atomically (a failed export leaves no partial file)."""

    def body(handle: BinaryIO) -> None:
        if fmt == "xlsx":
            write_xlsx(flt, rows, handle)
            return
        chunks = iter_json(flt, rows) if fmt == "json" else iter_csv(rows)
        for chunk in chunks:
            handle.write(chunk)

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    atomic_write(path, body, mode=0o640)
