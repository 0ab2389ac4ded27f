"""What `statement.pdf` states, read back with pypdf and compared with `statement.json`.

A changed byte already fails the manifest's hash; this catches a PDF re-rendered with other
figures and sealed with new hashes. The facts compared: the account and status in every page
header read, the opening, movement, entry count and closing of the summary, the content hash
in the footers, and the page count the footers state. Only the first pages (where the summary
and the start of the table are) and the last are read, so a long month verifies quickly.

Lines are matched whole (`fullmatch`), from the "Summary" heading on, so text a broker sent
(an account name, a note) cannot pose as one of these lines.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger_etl.statements.layout import STATEMENT_JSON
from ledger_etl.statements.paths import read_regular

FIRST_PAGES = 4  # the summary and the table's heading are on these
AMOUNT = r"(-?\d+(?:\.\d+)?)"
FOOTER = re.compile(r"content sha256 ([0-9a-f]{64}) page (\d+) of (\d+)")


def check_pdf(path: Path, doc: dict[str, Any], content_hash: str) -> list[str]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(read_regular(path)))
    pages = len(reader.pages)
    wanted = [*range(min(FIRST_PAGES, pages)), *([pages - 1] if pages > FIRST_PAGES else [])]
    texts = {n: reader.pages[n].extract_text().splitlines() for n in wanted}
    name = path.name
    problems = []
    currency = re.escape(doc["currency"])
    header = f"{doc['account_id']} · {doc['period']} · {doc['currency']} · {doc['status']}"
    for number, lines in texts.items():
        if not lines or lines[0].strip() != header:
            problems.append(f"{name} page {number + 1} header {lines[:1]!r:.80} differs from "
                            f"{STATEMENT_JSON} ({header!r})")  # fmt: skip
        footer = next((m for m in map(FOOTER.fullmatch, lines) if m), None)
        if footer is None:
            problems.append(f"{name} page {number + 1} has no content hash footer")
        elif footer.groups() != (content_hash, str(number + 1), str(pages)):
            problems.append(
                f"{name} page {number + 1} footer {footer.group(0)!r} differs from the content "
                f"hash {content_hash[:16]}... or {pages} pages"
            )
    stated = _summary_facts([line for n in sorted(texts) for line in texts[n]], currency)
    expected = {
        "opening balance": Decimal(doc["opening_balance"]),
        "movement": Decimal(doc["movement"]),
        "closing balance": Decimal(doc["closing_balance"]),
        "entry count": doc["entry_count"],
        "entries in the table heading": doc["entry_count"],
    }
    for what, want in expected.items():
        have = stated.get(what)
        if have is None:
            problems.append(f"{name} does not state the {what}")
        elif have != want:
            problems.append(f"{name} {what} {have} differs from {STATEMENT_JSON} {want}")
    return problems


def _summary_facts(lines: list[str], currency: str) -> dict[str, Any]:
    patterns = {
        "opening balance": re.compile(rf"Opening balance {AMOUNT} {currency}"),
        "movement": re.compile(rf"Movement (\d+) entr(?:y|ies) {AMOUNT} {currency}"),
        "closing balance": re.compile(rf"Closing balance {AMOUNT} {currency}"),
        "entries in the table heading": re.compile(r"Transactions: (\d+) entr(?:y|ies)"),
    }
    start = next((i for i, line in enumerate(lines) if line.strip() == "Summary"), len(lines))
    found: dict[str, Any] = {}
    for line in lines[start:]:
        for what, pattern in patterns.items():
            match = pattern.fullmatch(line.strip())
            if match is None or what in found:
                continue
            if what == "movement":
                found["entry count"] = int(match.group(1))
                found[what] = Decimal(match.group(2))
            elif what == "entries in the table heading":
                found[what] = int(match.group(1))
            else:
                found[what] = Decimal(match.group(1))
    return found
