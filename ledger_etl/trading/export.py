"""Exposure reports as CSV, XLSX and JSON, with the statements' hygiene.

- Text cells that a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, CR, LF first) get a
  `'` prefix (`statements.writers_csv.safe_text`); amounts never pass through it.
- Amounts are exact decimal strings in CSV and JSON. XLSX holds numeric cells (Excel stores
  binary floats, as the statements' XLSX does); the exact text is in the other two formats.
- Each file is written atomically (temp file, fsync, rename), and a manifest beside it
  (`<name>.manifest.json`) records its sha256, size, format and the report's key figures.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger_etl import __version__
from ledger_etl.errors import InputError

FORMATS = ("json", "csv", "xlsx")
POSITION_COLUMNS = (
    "deal_id",
    "epic",
    "instrument_id",
    "asset_class",
    "instrument_currency",
    "direction",
    "size",
    "open_level",
    "price",
    "fx_rate",
    "fx_source",
    "notional",
    "margin",
    "upl",
    "risk_to_stop",
    "flags",
)
AMOUNT_COLUMNS = frozenset(
    {"size", "open_level", "price", "fx_rate", "notional", "margin", "upl", "risk_to_stop"}
)


def render_json(report: dict[str, Any]) -> bytes:
    return (json.dumps(report, indent=2, sort_keys=False) + "\n").encode()


def safe_text(value: str | None) -> str:
    """The statements' formula guard (imported when used: the statements package is large)."""
    from ledger_etl.statements.writers_csv import safe_text as guard

    return guard(value)


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if column == "flags":
        return safe_text("; ".join(value))
    if column in AMOUNT_COLUMNS:
        return str(value)
    return safe_text(str(value))


def render_csv(report: dict[str, Any]) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(POSITION_COLUMNS)
    for p in report["positions"]:
        writer.writerow([_cell(c, p.get(c)) for c in POSITION_COLUMNS])
    return text.getvalue().encode("utf-8")


def render_xlsx(report: dict[str, Any]) -> bytes:
    from openpyxl import Workbook

    def number(column: str, value: Any) -> Any:
        if value is None:
            return None
        if column in AMOUNT_COLUMNS:
            return float(Decimal(value))
        return _cell(column, value)

    wb = Workbook()
    ws = wb.active
    ws.title = "positions"
    ws.append(list(POSITION_COLUMNS))
    for p in report["positions"]:
        ws.append([number(c, p.get(c)) for c in POSITION_COLUMNS])
    summary = wb.create_sheet("totals")
    summary.append(["account_id", safe_text(report["account_id"])])
    summary.append(["currency", report["currency"]])
    summary.append(["as_of", report["as_of"]])
    for name, value in report["totals"].items():
        summary.append([name, None if value is None else float(Decimal(value))])
    classes = wb.create_sheet("by_asset_class")
    classes.append(["asset_class", "notional", "margin", "upl", "positions"])
    for cls, fig in report["by_asset_class"].items():
        classes.append(
            [
                safe_text(cls),
                *(
                    None if fig.get(k) is None else float(Decimal(fig[k]))
                    for k in ("notional", "margin", "upl")
                ),
                fig.get("positions"),
            ]
        )
    breaches = wb.create_sheet("breaches")
    breaches.append(["rule", "deal_id", "detail"])
    for b in report["breaches"]:
        breaches.append(
            [safe_text(b["rule"]), safe_text(b.get("deal_id") or ""), safe_text(b["detail"])]
        )
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


RENDERERS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "json": render_json,
    "csv": render_csv,
    "xlsx": render_xlsx,
}


def write_report(report: dict[str, Any], out: Path, fmt: str | None = None) -> dict[str, Any]:
    """Write `report` to `out` atomically with its manifest; returns the manifest."""
    fmt = (fmt or out.suffix.lstrip(".") or "json").lower()
    if fmt not in RENDERERS:
        raise InputError(f"unknown exposure format {fmt!r} (choose from {', '.join(FORMATS)})")
    from ledger_etl.statements.paths import atomic_write, ensure_dir

    data = RENDERERS[fmt](report)
    ensure_dir(out.parent)
    atomic_write(out, data)
    manifest = {
        "manifest_version": 1,
        "kind": "exposure",
        "account_id": report["account_id"],
        "currency": report["currency"],
        "as_of": report["as_of"],
        "generated_at": datetime.now(UTC).isoformat(),
        "code_version": __version__,
        "files": {
            out.name: {
                "format": fmt,
                "bytes": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
        },
        "row_counts": {"positions": len(report["positions"]), "breaches": len(report["breaches"])},
        "totals": report["totals"],
    }
    atomic_write(
        out.with_name(out.name + ".manifest.json"), (json.dumps(manifest, indent=2) + "\n").encode()
    )
    return manifest
