"""Every fact two published files both state must agree: the folder's name and place, the
manifest, `statement.json`, `audit.jsonl`, and each format row by row.

`statement.json` is the statement of record. The manifest must state the same account, month,
version, status, reconciliation, balances, ledger state, diff and counts; its folder must be
`<account>/<month>/v<version>`; CSV and Parquet must hold the same rows with the same values
(amounts exactly), XLSX the same references with amounts to the cent, and the PDF the same
balances, entry count, status and content hash (`crosscheck_pdf`). Hashes alone cannot catch
a forger who rewrites a file and its hashes together; these comparisons can.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

from ledger_etl.statements.crosscheck_pdf import check_pdf
from ledger_etl.statements.document import content_hash, iso
from ledger_etl.statements.layout import AUDIT_FILE, CENT, FILE_NAMES, STATEMENT_JSON
from ledger_etl.statements.paths import StatementError, read_regular, version_number
from ledger_etl.statements.writers_csv import CSV_COLUMNS, safe_text
from ledger_etl.statements.writers_parquet import HEADER_KEYS, METADATA_KEY
from ledger_etl.statements.writers_xlsx import cell_text

SHOWN = 5  # mismatches listed per file; the rest are counted
TEXT_COLUMNS = (
    "reference",
    "type",
    "instrument",
    "currency",
    "status",
    "ledger_account",
    "deal_id",
    "note",
)
MONEY_COLUMNS = ("amount", "running_balance")
Row = dict[str, Any]


def check_content(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Problems between the files of one version whose hashes match its manifest."""
    try:
        doc = json.loads(read_regular(folder / STATEMENT_JSON))
        entries = doc.pop("entries")
        names = {t["key"]: t["name"] for t in doc["totals_by_ledger_account"]}
    except (OSError, ValueError, KeyError, TypeError, StatementError) as exc:
        return [f"{STATEMENT_JSON} cannot be read: {exc}"]
    problems: list[str] = []
    with localcontext() as ctx:
        ctx.prec = 60
        try:
            problems += _manifest_vs_document(folder, manifest, doc, entries)
            problems += _document_arithmetic(doc, entries)
            problems += _audit_vs_manifest(folder, manifest)
        except (ValueError, KeyError, TypeError, InvalidOperation) as exc:
            problems.append(f"manifest.json or {STATEMENT_JSON}: a field is malformed: {exc!r}")
        readers: dict[str, Callable[[Path, dict[str, Any], list[str]], list[Row]]] = {
            "csv": _csv_rows,
            "parquet": _parquet_rows,
            "xlsx": _xlsx_rows,
        }
        if FILE_NAMES["pdf"] in manifest["files"]:
            try:
                pdf = folder / FILE_NAMES["pdf"]
                problems += check_pdf(pdf, doc, manifest["content_hash"])
            except Exception as exc:  # pypdf raises many kinds on a malformed file: report them
                problems.append(f"{FILE_NAMES['pdf']} cannot be read: {exc!r}")
        for fmt, read in readers.items():
            name = FILE_NAMES[fmt]
            if name not in manifest["files"]:
                continue
            try:
                rows = read(folder / name, doc, problems)
                expected = [_expected(fmt, e, names) for e in entries]
                problems += _compare_rows(name, rows, expected, exact=fmt != "xlsx")
                problems += _format_totals(name, fmt, manifest, rows, doc["opening_balance"])
            except (
                OSError,
                ValueError,
                KeyError,
                TypeError,
                InvalidOperation,
                StatementError,
            ) as exc:
                problems.append(f"{name} cannot be read: {exc!r}")
    return problems


def _same(a: Any, b: Any) -> bool:
    """Equal, with decimal strings compared as numbers (`20.00` states what `20` does)."""
    if isinstance(a, str) and isinstance(b, str) and a != b:
        try:
            return Decimal(a) == Decimal(b)
        except InvalidOperation:
            return False
    return a == b


def _manifest_vs_document(
    folder: Path, manifest: dict[str, Any], doc: dict[str, Any], entries: list[Row]
) -> list[str]:
    recon, totals, counts = manifest["reconciliation"], manifest["totals"], manifest["row_counts"]
    coverage = doc["coverage"]
    facts = [  # (what, manifest says, statement.json says, the folder says or None)
        ("account_id", manifest["account_id"], doc["account_id"], folder.parent.parent.name),
        ("month", manifest["month"], doc["period"], folder.parent.name),
        ("version", manifest["version"], doc["version"], version_number(folder.name)),
        ("status", manifest["status"], doc["status"], None),
        ("reconciliation status", recon["status"], doc["reconciliation"]["status"], None),
        (
            "reconciliation difference",
            recon["difference"],
            doc["reconciliation"]["difference"],
            None,
        ),
        ("opening balance", totals["opening_balance"], doc["opening_balance"], None),
        ("closing balance", totals["closing_balance"], doc["closing_balance"], None),
        ("movement", totals["movement"], doc["movement"], None),
        ("ledger state", manifest["ledger_state"], doc["ledger_state"], None),
        ("diff", manifest["diff"], doc["diff"], None),
        ("entry count", counts["entries"], doc["entry_count"], len(entries)),
        ("activity count", counts["activity"], len(doc["activity"]), None),
        ("fetch count", counts["fetches"], len(coverage["fetches"]), None),
        ("gap count", counts["gaps"], len(coverage["gaps"]), None),
    ]
    problems = []
    for what, in_manifest, in_doc, in_folder in facts:
        if not _same(in_manifest, in_doc):
            problems.append(
                f"manifest.json {what} {in_manifest!r:.80} differs from "
                f"{STATEMENT_JSON} {in_doc!r:.80}"
            )
        if in_folder is not None and not _same(in_doc, in_folder):
            where = "the entries" if what == "entry count" else f"the folder {folder.name}"
            problems.append(
                f"{STATEMENT_JSON} {what} {in_doc!r:.80} differs from {where} ({in_folder!r:.80})"
            )
    if content_hash(doc, entries) != manifest["content_hash"]:
        problems.append(f"{STATEMENT_JSON} content hash does not match the manifest")
    return problems


def _document_arithmetic(doc: dict[str, Any], entries: list[Row]) -> list[str]:
    problems = []
    opening, closing = Decimal(doc["opening_balance"]), Decimal(doc["closing_balance"])
    if Decimal(doc["movement"]) != closing - opening:
        problems.append(f"{STATEMENT_JSON}: movement {doc['movement']} != closing - opening")
    running = opening
    for number, entry in enumerate(entries, 1):
        running += Decimal(entry["amount"])
        if Decimal(entry["running_balance"]) != running:
            problems.append(
                f"{STATEMENT_JSON}: entry {number} ({entry['reference']!r:.40}) has "
                f"running balance {entry['running_balance']}, its amounts give {running}"
            )
            break
    if running != closing:
        problems.append(f"{STATEMENT_JSON}: the entries end at {running}, closing is {closing}")
    for title, key in (("totals_by_type", "type"), ("totals_by_ledger_account", "ledger_account")):
        counted: dict[str, tuple[int, Decimal]] = {}
        for entry in entries:
            count, amount = counted.get(entry[key], (0, Decimal(0)))
            counted[entry[key]] = (count + 1, amount + Decimal(entry["amount"]))
        stated = {t["key"]: (t["count"], Decimal(t["amount"])) for t in doc[title]}
        if stated != counted:
            problems.append(f"{STATEMENT_JSON}: {title} do not equal the entries' totals")
    return problems


def _audit_vs_manifest(folder: Path, manifest: dict[str, Any]) -> list[str]:
    first = read_regular(folder / AUDIT_FILE).split(b"\n", 1)[0]
    head = json.loads(first)
    keys = (
        "account_id", "month", "version", "status", "run_id", "dagster_run_id", "code_version",
        "generated_at",
    )  # fmt: skip
    return [
        f"{AUDIT_FILE} {key} {head.get(key)!r:.80} differs from manifest.json {manifest[key]!r:.80}"
        for key in keys
        if head.get(key) != manifest.get(key)
    ]


def _expected(fmt: str, entry: Row, names: dict[str, str]) -> Row:
    """What a format's row must hold for one `statement.json` entry."""
    row = {c: entry[c] for c in TEXT_COLUMNS}
    row["posted_at"] = entry["posted_at"]
    row["ledger_account_name"] = names.get(entry["ledger_account"])
    row.update({c: Decimal(entry[c]) for c in MONEY_COLUMNS})
    if fmt == "csv":  # empty for None, formula triggers neutralised (writers_csv)
        row.update({k: safe_text(v) for k, v in row.items() if k not in MONEY_COLUMNS})
    elif fmt == "parquet":
        row["flags"] = entry["flags"]
    elif fmt == "xlsx":  # amounts are floats there: the reference and amounts to the cent
        row = {"reference": cell_text(entry["reference"]), **{c: row[c] for c in MONEY_COLUMNS}}
    return row


def _compare_rows(name: str, rows: list[Row], expected: list[Row], exact: bool) -> list[str]:
    if len(rows) != len(expected):
        return [f"{name} has {len(rows)} entries, {STATEMENT_JSON} has {len(expected)}"]
    found = []
    for number, (got, want) in enumerate(zip(rows, expected, strict=True), 1):
        for column, value in want.items():
            have = got.get(column)
            if isinstance(value, Decimal) and not exact:
                agree = isinstance(have, Decimal) and abs(have - value) <= CENT
            else:
                agree = have == value
            if not agree:
                found.append(
                    f"{name} row {number} {column} {have!s:.60} differs from "
                    f"{STATEMENT_JSON} {value!s:.60}"
                )
    if len(found) > SHOWN:
        found = [*found[:SHOWN], f"{name}: {len(found) - SHOWN} more values differ"]
    return found


def _format_totals(
    name: str, fmt: str, manifest: dict[str, Any], rows: list[Row], opening: str
) -> list[str]:
    """The manifest's `format_totals` for the file equal what its rows add up to."""
    stated = manifest["format_totals"].get(fmt)
    if stated is None:
        return [f"manifest.json has no format_totals for {name}"]
    amount_sum = sum((r["amount"] for r in rows), Decimal(0))
    last = rows[-1]["running_balance"] if rows else Decimal(opening)
    problems = []
    for key, value in (("rows", len(rows)), ("amount_sum", amount_sum), ("closing_balance", last)):
        want = stated.get(key)
        if key == "rows":
            agree = want == value
        else:
            diff = abs(Decimal(str(want)) - value)
            agree = diff == 0 if fmt != "xlsx" else diff <= CENT
        if not agree:
            problems.append(f"{name} {key} {value} differs from manifest.json format_totals {want}")
    return problems


def _csv_rows(path: Path, doc: dict[str, Any], problems: list[str]) -> list[Row]:
    text = read_regular(path).decode("utf-8")
    reader = csv.reader(io.StringIO(text, newline=""))
    head = next(reader)
    if tuple(head) != CSV_COLUMNS:
        raise ValueError(f"unexpected header {head!r:.200}")
    rows = []
    for cells in reader:
        row: Row = dict(zip(CSV_COLUMNS, cells, strict=True))
        for column in MONEY_COLUMNS:
            row[column] = Decimal(row[column])
        rows.append(row)
    return rows


def _parquet_rows(path: Path, doc: dict[str, Any], problems: list[str]) -> list[Row]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(read_regular(path)))
    stated = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    for key in HEADER_KEYS:
        if not _same(stated.get(key), doc.get(key)):
            problems.append(
                f"{path.name} metadata {key} {stated.get(key)!r:.60} differs from "
                f"{STATEMENT_JSON} {doc.get(key)!r:.60}"
            )
    rows = table.to_pylist()
    for row in rows:
        row["posted_at"] = iso(row["posted_at"])
    return rows


def _xlsx_rows(path: Path, doc: dict[str, Any], problems: list[str]) -> list[Row]:
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(read_regular(path)), read_only=True, data_only=True)
    try:
        sheets = [ws for ws in workbook.worksheets if ws.title.startswith("Transactions")]
        if not sheets:
            problems.append(f"{path.name}: no Transactions sheet")
        rows = []
        for ws in sheets:
            cells = ws.iter_rows(values_only=True)
            head = next(cells)
            at = {
                c: head.index(t)
                for c, t in (
                    ("reference", "Reference"),
                    ("amount", "Amount"),
                    ("running_balance", "Running balance"),
                )
            }
            for values in cells:
                row = {column: values[index] for column, index in at.items()}
                for column in MONEY_COLUMNS:  # repr: the float's shortest exact text
                    value = row[column]
                    row[column] = Decimal(repr(value)) if isinstance(value, (int, float)) else None
                rows.append(row)
        summary = {
            row[0]: row[1]
            for row in workbook["Summary"].iter_rows(values_only=True, max_col=2)
            if len(row) > 1 and row[0]
        }
    finally:
        workbook.close()
    for label, key in (
        ("Opening balance", "opening_balance"),
        ("Closing balance", "closing_balance"),
    ):
        value, want = summary.get(label), Decimal(doc[key])
        if not isinstance(value, (int, float)) or abs(Decimal(repr(value)) - want) > CENT:
            problems.append(
                f"{path.name}: Summary {label} {value!r:.40} does not agree with "
                f"{STATEMENT_JSON} {want}"
            )
    return rows
