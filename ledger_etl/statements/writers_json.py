"""`statement.json`: the statement of record, streamed one entry per line.

Amounts are decimal strings; the header keys follow `document.header` and `entries` comes last.
Later versions compute their diff from this file, so it is always published.
"""

from __future__ import annotations

import json
from decimal import Decimal, localcontext
from typing import BinaryIO

from ledger_etl.statements.document import entry_doc, header
from ledger_etl.statements.model import Statement


def write_json(statement: Statement, handle: BinaryIO) -> dict[str, object]:
    write = handle.write
    write(b"{\n")
    for key, value in header(statement).items():
        write(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n".encode())
    encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode
    total = Decimal(0)
    last = format(statement.opening_balance, "f")
    write(b'  "entries": [')
    separator = b"\n    "
    with localcontext() as ctx:
        ctx.prec = 60
        for line in statement.lines:
            doc = entry_doc(line)
            write(separator + encode(doc).encode())
            separator = b",\n    "
            total += line.entry.amount
            last = doc["running_balance"]
    write(b"\n  ]\n}\n" if statement.lines else b"]\n}\n")
    return {
        "rows": len(statement.lines),
        "amount_sum": format(total, "f"),
        "closing_balance": last,
    }
