"""Exposure files: formula-safe text, exact amounts, atomic writes with a sha256 manifest."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from openpyxl import load_workbook

from ledger_etl.errors import InputError
from ledger_etl.trading.export import render_csv, write_report

REPORT = {
    "account_id": "A1",
    "currency": "USD",
    "as_of": "2026-03-02T14:05:00+00:00",
    "positions": [
        {
            "deal_id": '=HYPERLINK("http://x")',
            "epic": "+GOLD",
            "instrument_id": "CAPITAL:+GOLD",
            "asset_class": "COMMODITIES",
            "instrument_currency": "USD",
            "direction": "SELL",
            "size": "0.5",
            "open_level": "18010.0",
            "price": "18001",
            "fx_rate": "1.085",
            "fx_source": "@EURUSD mid",
            "notional": "-9765.5425",
            "margin": "488.277125",
            "upl": "-4.8825",
            "risk_to_stop": None,
            "flags": ["-flag"],
        }
    ],
    "totals": {"notional": "-9765.5425", "margin": "488.277125", "upl": "-4.8825"},
    "by_asset_class": {
        "COMMODITIES": {
            "notional": "-9765.5425",
            "margin": "488.277125",
            "upl": "-4.8825",
            "positions": 1,
        }
    },
    "breaches": [{"rule": "require_stop", "deal_id": "=1", "detail": "-no stop"}],
}


def test_csv_neutralises_formulas_and_keeps_amounts_exact():
    row = next(csv.DictReader(io.StringIO(render_csv(REPORT).decode())))
    assert row["deal_id"].startswith("'=") and row["epic"] == "'+GOLD"
    assert row["fx_source"] == "'@EURUSD mid" and row["flags"] == "'-flag"
    assert row["notional"] == "-9765.5425" and row["upl"] == "-4.8825"  # numbers stay numbers
    assert row["risk_to_stop"] == ""


@pytest.mark.parametrize("fmt", ["json", "csv", "xlsx"])
def test_each_format_is_written_with_its_manifest(tmp_path, fmt):
    out = tmp_path / "deep" / f"exposure.{fmt}"
    manifest = write_report(REPORT, out)
    data = out.read_bytes()
    assert manifest["files"][out.name] == {
        "format": fmt,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert json.loads((tmp_path / "deep" / f"exposure.{fmt}.manifest.json").read_text()) == manifest
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]
    if fmt == "xlsx":
        sheet = load_workbook(out)["positions"]
        assert sheet["A2"].value.startswith("'=") and sheet["L2"].value == -9765.5425
    if fmt == "json":
        assert json.loads(data)["totals"]["notional"] == "-9765.5425"


def test_unknown_format_is_refused(tmp_path):
    with pytest.raises(InputError, match="unknown exposure format 'pdf'"):
        write_report(REPORT, tmp_path / "x.pdf")
