"""Verify published statements: every hash, and that all formats tell the same story.

`verify_tree(path)` takes one version folder, or any folder above version folders, and returns
the problems found (an empty list means everything verified).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from decimal import Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import Any

from ledger_etl.statements.document import content_hash
from ledger_etl.statements.export import AUDIT_FILE, CENT, FILE_NAMES, sha256_file
from ledger_etl.statements.paths import version_number
from ledger_etl.statements.versions import MANIFEST_FILE, VERSIONS_FILE
from ledger_etl.statements.writers_csv import CSV_COLUMNS


def verify_tree(path: Path | str) -> list[str]:
    root = Path(path)
    if not root.exists():
        return [f"{root}: no such file or directory"]
    if (root / MANIFEST_FILE).is_file():
        folders = [root]
    else:
        folders = sorted(
            m.parent
            for m in root.rglob(MANIFEST_FILE)
            if version_number(m.parent.name) is not None
            and not any(part.startswith(".") for part in m.relative_to(root).parts)
        )
    if not folders:
        return [f"{root}: no statement version folders (v<N>/{MANIFEST_FILE}) found"]
    problems: list[str] = []
    for folder in folders:
        problems += [f"{folder}: {p}" for p in verify_version(folder)]
    return problems


def verify_version(folder: Path) -> list[str]:
    try:
        manifest_raw = (folder / MANIFEST_FILE).read_bytes()
        manifest = json.loads(manifest_raw)
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{MANIFEST_FILE} is unreadable: {exc}"]
    problems = _check_index(folder, manifest_raw)
    for name, meta in sorted(files.items()):
        target = folder / name
        if not target.is_file() or target.is_symlink():
            problems.append(f"{name} is missing")
            continue
        if target.stat().st_size != meta.get("bytes"):
            problems.append(
                f"{name} is {target.stat().st_size} bytes, manifest says {meta.get('bytes')}"
            )
        if sha256_file(target) != meta.get("sha256"):
            problems.append(f"{name} sha256 does not match the manifest")
    extra = sorted(
        p.name for p in folder.iterdir() if p.name not in files and p.name != MANIFEST_FILE
    )
    problems += [f"{name} is not listed in the manifest" for name in extra]
    if AUDIT_FILE not in files:
        problems.append(f"{AUDIT_FILE} is not listed in the manifest")
    if problems:
        return problems  # totals of tampered files mean nothing
    return _check_formats(folder, manifest)


def _check_index(folder: Path, manifest_raw: bytes) -> list[str]:
    """The manifest's own hash is kept in `versions.json` beside the version folders."""
    index_path = folder.parent / VERSIONS_FILE
    if not index_path.is_file():
        return []
    try:
        index = json.loads(index_path.read_bytes())
        entries = {v["folder"]: v for v in index["versions"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"{VERSIONS_FILE} is unreadable: {exc}"]
    entry = entries.get(folder.name)
    if entry is None:
        return [f"{VERSIONS_FILE} does not list {folder.name}"]
    if entry.get("manifest_sha256") != hashlib.sha256(manifest_raw).hexdigest():
        return [f"{MANIFEST_FILE} sha256 does not match {VERSIONS_FILE}"]
    return []


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def _check_formats(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Recompute the content hash and totals from each file and compare them."""
    expected_rows = manifest["row_counts"]["entries"]
    totals = manifest["totals"]
    movement, closing = _dec(totals["movement"]), _dec(totals["closing_balance"])
    opening = _dec(totals["opening_balance"])
    found: dict[str, tuple[int, Decimal, Decimal]] = {}
    problems: list[str] = []
    readers = {"json": _json_totals, "csv": _csv_totals, "parquet": _parquet_totals}
    readers["xlsx"] = _xlsx_totals
    with localcontext() as ctx:
        ctx.prec = 60
        for fmt, name in FILE_NAMES.items():
            if name not in manifest["files"]:
                continue
            try:
                found[fmt] = readers[fmt](folder / name, manifest, problems)
            except (ValueError, KeyError, TypeError, InvalidOperation, OSError) as exc:
                problems.append(f"{name} cannot be read: {exc}")
        if movement != closing - opening:
            problems.append(
                f"manifest movement {movement} != closing {closing} - opening {opening}"
            )
        for fmt, (rows, amount_sum, last) in found.items():
            name = FILE_NAMES[fmt]
            if rows != expected_rows:
                problems.append(f"{name} has {rows} entries, the manifest says {expected_rows}")
            exact = fmt != "xlsx"
            for label, got, want in (
                ("amount sum", amount_sum, movement),
                ("closing", last, closing),
            ):
                if (got != want) if exact else abs(got - want) > CENT:
                    problems.append(f"{name} {label} {got} does not agree with {want}")
    return problems


def _json_totals(path: Path, manifest: dict[str, Any], problems: list[str]):  # type: ignore[no-untyped-def]
    with path.open("rb") as handle:
        doc = json.load(handle)
    entries = doc.pop("entries")
    if content_hash(doc, entries) != manifest["content_hash"]:
        problems.append(f"{path.name} content hash does not match the manifest")
    opening = _dec(doc["opening_balance"])
    amount_sum = sum((_dec(e["amount"]) for e in entries), Decimal(0))
    last = _dec(entries[-1]["running_balance"]) if entries else opening
    by_type = sum((_dec(t["amount"]) for t in doc["totals_by_type"]), Decimal(0))
    by_account = sum((_dec(t["amount"]) for t in doc["totals_by_ledger_account"]), Decimal(0))
    if not by_type == by_account == amount_sum:
        problems.append(
            f"{path.name}: totals by type {by_type} / by ledger account {by_account} "
            f"do not equal the entries' sum {amount_sum}"
        )
    if _dec(doc["closing_balance"]) != last:
        problems.append(f"{path.name}: closing balance is not the last running balance")
    return len(entries), amount_sum, last


def _csv_totals(path: Path, manifest: dict[str, Any], problems: list[str]):  # type: ignore[no-untyped-def]
    opening = _dec(manifest["totals"]["opening_balance"])
    with path.open("r", encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        head = next(reader)
        if tuple(head) != CSV_COLUMNS:
            problems.append(f"{path.name}: unexpected header {head}")
            return 0, Decimal(0), opening
        amount_at, running_at = head.index("amount"), head.index("running_balance")
        rows, total, last = 0, Decimal(0), opening
        for row in reader:
            rows += 1
            total += Decimal(row[amount_at])
            last = Decimal(row[running_at])
    return rows, total, last


def _parquet_totals(path: Path, manifest: dict[str, Any], problems: list[str]):  # type: ignore[no-untyped-def]
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["amount", "running_balance"])
    opening = _dec(manifest["totals"]["opening_balance"])
    total = pc.sum(table["amount"]).as_py() if table.num_rows else Decimal(0)
    last = table["running_balance"][-1].as_py() if table.num_rows else opening
    return table.num_rows, Decimal(total), Decimal(last)


def _xlsx_totals(path: Path, manifest: dict[str, Any], problems: list[str]):  # type: ignore[no-untyped-def]
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(path.read_bytes()), read_only=True, data_only=True)
    try:
        opening = float(manifest["totals"]["opening_balance"])
        amounts: list[float] = []
        last = opening
        sheets = [ws for ws in workbook.worksheets if ws.title.startswith("Transactions")]
        if not sheets:
            problems.append(f"{path.name}: no Transactions sheet")
        for ws in sheets:
            rows = ws.iter_rows(values_only=True)
            head = next(rows)
            amount_at, running_at = head.index("Amount"), head.index("Running balance")
            for row in rows:
                amounts.append(float(row[amount_at]))
                last = float(row[running_at])
        summary = {
            row[0]: row[1]
            for row in workbook["Summary"].iter_rows(values_only=True, max_col=2)
            if len(row) > 1 and row[0]
        }
        for label, key in (
            ("Opening balance", "opening_balance"),
            ("Closing balance", "closing_balance"),
        ):
            value = summary.get(label)
            want = _dec(manifest["totals"][key])
            if not isinstance(value, (int, float)) or abs(_dec(value) - want) > CENT:
                problems.append(f"{path.name}: Summary {label} {value} does not agree with {want}")
    finally:
        workbook.close()
    if not math.isfinite(math.fsum(amounts)):
        problems.append(f"{path.name}: amounts are not finite")
    return len(amounts), _dec(repr(math.fsum(amounts))), _dec(repr(last))
