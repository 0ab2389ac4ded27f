"""`statement.csv`: UTF-8 with a header row, exact decimal amounts, ISO 8601 UTC instants.

Text cells are neutralised against formula injection; amount columns are written from `Decimal`
and never pass through the text sanitiser, so a negative amount stays a plain number.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal, localcontext
from typing import BinaryIO

from ledger_etl.statements.document import iso, money
from ledger_etl.statements.model import Statement

CSV_COLUMNS = (
    "posted_at",
    "reference",
    "type",
    "instrument",
    "amount",
    "currency",
    "status",
    "running_balance",
    "ledger_account",
    "ledger_account_name",
    "deal_id",
    "note",
)
# Spreadsheets evaluate a cell that starts with one of these as a formula (OWASP CSV injection).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")


def safe_text(value: str | None) -> str:
    """Text for a spreadsheet cell: a leading formula trigger gets a `'` prefix."""
    if not value:
        return ""
    return "'" + value if value.startswith(FORMULA_TRIGGERS) else value


def unsafe_text(value: str) -> str:
    """The original text of a `safe_text` cell."""
    if value.startswith("'") and value[1:].startswith(FORMULA_TRIGGERS):
        return value[1:]
    return value


def write_csv(statement: Statement, handle: BinaryIO) -> dict[str, object]:
    """Write the entries; returns what was written (rows, amount sum, last running balance)."""
    text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    names = {t.key: t.name for t in statement.totals_by_ledger_account}
    safe_names = {key: safe_text(name) for key, name in names.items()}
    total = Decimal(0)
    last = money(statement.opening_balance)
    rows = 0
    with localcontext() as ctx:
        ctx.prec = 60
        for line in statement.lines:
            e = line.entry
            amount = money(e.amount)
            running = money(line.running_balance)
            writer.writerow(
                (
                    iso(e.posted_at),
                    safe_text(e.reference),
                    safe_text(e.transaction_type),
                    safe_text(e.instrument),
                    amount,
                    safe_text(e.currency),
                    safe_text(e.status),
                    running,
                    safe_text(e.ledger_account),
                    safe_names.get(e.ledger_account, ""),
                    safe_text(e.deal_id),
                    safe_text(e.note),
                )
            )
            total += e.amount
            last = running
            rows += 1
    text.flush()
    text.detach()
    return {"rows": rows, "amount_sum": money(total), "closing_balance": last}
