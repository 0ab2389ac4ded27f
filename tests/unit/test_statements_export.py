"""Writers, publishing and verification from hand-made statements (files, no database)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from ledger_etl.cli import main as cli
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.export import publish_built
from ledger_etl.statements.paths import StatementError, UnsafeNameError
from ledger_etl.statements.verify import verify_tree
from tests.unit.office import soffice
from tests.unit.test_statements_build import entry, inputs

D = Decimal
OWASP_PAYLOADS = [
    "=1+2",
    "+1",
    "-1+1",
    "@SUM(1)",
    "=cmd|' /C calc'!A0",
    "\t=1",
    "\r=1",
    "\n=1",
    '=HYPERLINK("http://x")',
    "-2+3+cmd|' /C calc'!A0",
    "=10+20",
]


def hostile_statement():  # type: ignore[no-untyped-def]
    entries = []
    for i, payload in enumerate(OWASP_PAYLOADS):
        e = entry(f"r{i:02d}", 3 + i, "-12.34" if i % 2 else "7.5")
        entries.append(replace(e, note=payload, instrument=payload))
    total = sum((e.amount for e in entries), D(0))
    return build_statement(
        inputs(entries=tuple(entries), balance_at_end=D("1000") + total, observation=None,
               observation_window=None)
    )  # fmt: skip


def publish(statement, out: Path, formats=("csv", "xlsx", "json", "parquet")):  # type: ignore[no-untyped-def]
    return publish_built(statement, out, run_id="test-run", formats=formats)


def test_formula_injection_is_neutralised_in_csv(tmp_path: Path) -> None:
    statement = hostile_statement()
    folder = publish(statement, tmp_path).folder
    with (folder / "statement.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(OWASP_PAYLOADS)
    for row, payload in zip(rows, OWASP_PAYLOADS, strict=True):
        assert row["note"] == "'" + payload
        assert row["instrument"] == "'" + payload
        for column in ("amount", "running_balance"):
            assert not row[column].startswith("'")
            Decimal(row[column])  # parses as a number
    assert any(row["amount"].startswith("-") for row in rows)  # negative amounts stay numbers


def test_formula_injection_is_neutralised_in_xlsx(tmp_path: Path) -> None:
    folder = publish(hostile_statement(), tmp_path).folder
    wb = load_workbook(folder / "statement.xlsx")
    ws = wb["Transactions"]
    head = [c.value for c in ws[1]]
    note_at, amount_at = head.index("Note"), head.index("Amount")
    negatives = 0
    for row, payload in zip(ws.iter_rows(min_row=2), OWASP_PAYLOADS, strict=True):
        note = row[note_at]
        # XML readers normalise a raw CR to LF; the cell is still plain text with the prefix.
        assert note.data_type == "s" and note.value == "'" + payload.replace("\r", "\n")
        amount = row[amount_at]
        assert amount.data_type == "n" and isinstance(amount.value, float)
        negatives += amount.value < 0
    assert negatives > 0
    for sheet in wb.worksheets:  # nothing anywhere became a formula
        for row in sheet.iter_rows():
            assert all(cell.data_type != "f" for cell in row)


def test_all_formats_carry_the_same_rows_and_totals(tmp_path: Path) -> None:
    statement = hostile_statement()
    folder = publish(statement, tmp_path).folder
    expected = [(ln.entry.reference, ln.entry.amount, ln.running_balance) for ln in statement.lines]
    doc = json.loads((folder / "statement.json").read_text(encoding="utf-8"))
    assert [
        (e["reference"], D(e["amount"]), D(e["running_balance"])) for e in doc["entries"]
    ] == expected
    # No broker balance observation: nothing proves the closing, so nothing proves the opening.
    assert doc["status"] == "PROVISIONAL" and doc["version"] == 1
    assert [r.split(":")[0] for r in doc["status_reasons"]] == [
        "reconciliation UNVERIFIED",
        "opening balance 1000.00 not proven",
    ]
    for key in ("schema_version", "account_id", "currency", "period_start", "period_end",
                "opening_balance", "closing_balance", "totals_by_type",
                "totals_by_ledger_account", "activity", "reconciliation", "coverage"):  # fmt: skip
        assert key in doc
    assert doc["period_end"] == "2025-07-01T00:00:00.000Z"
    with (folder / "statement.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["reference"], D(r["amount"]), D(r["running_balance"])) for r in rows] == expected
    assert rows[0]["posted_at"] == "2025-06-03T12:00:00.000Z"
    table = pq.read_table(folder / "statement.parquet")
    assert str(table.schema.field("amount").type) == "decimal128(38, 8)"
    assert str(table.schema.field("posted_at").type) == "timestamp[us, tz=UTC]"
    assert list(zip(table["reference"].to_pylist(), table["amount"].to_pylist(),
                    table["running_balance"].to_pylist(), strict=True)) == expected  # fmt: skip
    frame = pd.read_excel(folder / "statement.xlsx", sheet_name="Transactions")
    assert list(frame["Reference"]) == [r for r, _, _ in expected]
    assert [round(D(str(v)), 2) for v in frame["Amount"]] == [round(a, 2) for _, a, _ in expected]
    assert round(D(str(frame["Amount"].sum())), 2) == round(statement.movement, 2)
    assert pd.api.types.is_datetime64_any_dtype(frame["Posted at (UTC)"])
    wb = load_workbook(folder / "statement.xlsx", read_only=True)
    assert wb.sheetnames == ["Summary", "Transactions", "Activity", "Coverage"]
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(values_only=True) if len(r) > 1}
    assert round(D(str(summary["Closing balance"])), 2) == round(statement.closing_balance, 2)
    wb.close()
    full = load_workbook(folder / "statement.xlsx")
    ws = full["Transactions"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == f"A1:L{len(expected) + 1}"
    assert ws.cell(2, 1).is_date and ws.cell(2, 5).number_format.startswith("#,##0.00")
    assert ws.column_dimensions["L"].width >= 20


def test_libreoffice_reads_the_xlsx(tmp_path: Path) -> None:
    office = soffice()
    statement = hostile_statement()
    folder = publish(statement, tmp_path / "out").folder
    work = tmp_path / "lo"
    work.mkdir()
    shutil.copy(folder / "statement.xlsx", work / "statement.xlsx")
    subprocess.run(
        [office, "--headless", f"-env:UserInstallation=file://{work}/profile", "--convert-to",
         "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,2",
         "--outdir", str(work), str(work / "statement.xlsx")],
        check=True, timeout=180, capture_output=True,
    )  # fmt: skip
    converted = work / "statement-Transactions.csv"
    if not converted.exists():
        converted = work / "statement.csv"
    with converted.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if rows and rows[0][0] != "Posted at (UTC)":
        pytest.skip("this LibreOffice exported only the first sheet")
    assert len(rows) - 1 == len(statement.lines)
    total = sum(D(r[4].replace(",", "")) for r in rows[1:])
    assert round(total, 2) == round(statement.movement, 2)


def test_verify_passes_untouched_and_fails_on_any_flipped_byte(tmp_path: Path) -> None:
    result = publish(hostile_statement(), tmp_path)
    runner = CliRunner()
    ok = runner.invoke(cli, ["verify", str(tmp_path)])
    assert ok.exit_code == 0, ok.output
    assert verify_tree(result.folder) == []
    for target in sorted(result.folder.iterdir()):
        original = target.read_bytes()
        os.chmod(target, 0o640)
        for offset in (0, len(original) // 2, len(original) - 1):
            flipped = bytearray(original)
            flipped[offset] ^= 0x01
            target.write_bytes(bytes(flipped))
            bad = runner.invoke(cli, ["verify", str(result.folder)])
            assert bad.exit_code != 0, (target.name, offset)
            assert "problem" in bad.output
        target.write_bytes(original)
    assert runner.invoke(cli, ["verify", str(tmp_path)]).exit_code == 0


def test_verify_names_inconsistent_totals(tmp_path: Path) -> None:
    folder = publish(hostile_statement(), tmp_path).folder
    problems = verify_tree(tmp_path / "nothing-here")
    assert problems and "no such file" in problems[0]
    (folder / "extra.txt").write_text("x")
    assert any("extra.txt is not listed" in p for p in verify_tree(folder))


def test_permissions_under_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        result = publish(hostile_statement(), tmp_path)
    finally:
        os.umask(old)
    for path in result.folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o440, path
    assert stat.S_IMODE(result.folder.stat().st_mode) == 0o750
    month_dir = result.folder.parent
    assert stat.S_IMODE(month_dir.stat().st_mode) == 0o750
    assert stat.S_IMODE((month_dir / "versions.json").stat().st_mode) == 0o640
    assert not [p for p in month_dir.iterdir() if p.name.endswith((".tmp", ".partial"))]


def test_publishing_the_same_content_writes_nothing(tmp_path: Path) -> None:
    statement = hostile_statement()
    first = publish(statement, tmp_path)
    before = {p: p.read_bytes() for p in first.folder.parent.rglob("*") if p.is_file()}
    again = publish(statement, tmp_path)
    assert (again.status, again.folder, again.version) == ("unchanged", first.folder, 1)
    after = {p: p.read_bytes() for p in first.folder.parent.rglob("*") if p.is_file()}
    assert after == before


def test_a_changed_statement_gets_a_new_version_with_a_diff(tmp_path: Path) -> None:
    base = inputs(observation=None, observation_window=None)
    v1 = publish(build_statement(base), tmp_path)
    v1_bytes = {p.name: p.read_bytes() for p in v1.folder.iterdir()}
    late = entry("a9", 25, "3.00")
    moved = replace(base.entries[1], amount=D("-11.50"))
    entries = tuple(sorted((base.entries[0], moved, *base.entries[3:], late),
                           key=lambda e: (e.posted_at, e.reference)))  # fmt: skip
    v2 = publish(
        build_statement(replace(base, entries=entries, balance_at_end=D("996.00"))), tmp_path
    )
    assert v2.status == "written" and v2.version == 2 and v2.folder.name == "v2"
    diff = json.loads((v2.folder / "statement.json").read_text())["diff"]
    assert diff["added"] == ["a9"]
    assert diff["removed"] == ["a2"]
    assert diff["changed"] == [
        {"reference": "a1", "fields": {"amount": {"before": "-10.50", "after": "-11.50"}}}
    ]
    assert D(diff["closing_balance_delta"]) == D("996.00") - D("1194.00")
    assert D(diff["opening_balance_delta"]) == 0
    manifest = json.loads((v2.folder / "manifest.json").read_text())
    assert manifest["diff"] == diff and manifest["version"] == 2
    assert {p.name: p.read_bytes() for p in v1.folder.iterdir()} == v1_bytes
    index = json.loads((tmp_path / "ACC-1" / "2025-06" / "versions.json").read_text())
    assert [(v["version"], v["state"], v["superseded_by"]) for v in index["versions"]] == [
        (1, "superseded", 2),
        (2, "current", None),
    ]
    assert verify_tree(tmp_path) == []


def test_formats_option_always_keeps_json(tmp_path: Path) -> None:
    result = publish(hostile_statement(), tmp_path, formats=("csv",))
    assert sorted(p.name for p in result.folder.iterdir()) == [
        "audit.jsonl", "manifest.json", "statement.csv", "statement.json",
    ]  # fmt: skip
    assert verify_tree(result.folder) == []


def test_audit_holds_steps_and_assertions(tmp_path: Path) -> None:
    folder = publish(hostile_statement(), tmp_path).folder
    lines = [json.loads(x) for x in (folder / "audit.jsonl").read_text().splitlines()]
    kinds = {line["kind"] for line in lines}
    assert {"statement", "step", "assertion"} <= kinds
    assertions = {line["name"]: line["ok"] for line in lines if line["kind"] == "assertion"}
    assert all(assertions.values())
    for name in ("opening_equals_previous_closing", "entries_sum_equals_movement", "totals_agree",
                 "xlsx_amount_sum_equals_model", "csv_rows_equal_model"):  # fmt: skip
        assert name in assertions
    assert all("started_at" in x and "finished_at" in x for x in lines if x["kind"] == "step")


def test_unsafe_names_and_failed_checks_are_refused(tmp_path: Path) -> None:
    statement = hostile_statement()
    with pytest.raises(UnsafeNameError):
        publish(replace(statement, account_id="../../etc"), tmp_path)
    broken = build_statement(inputs(balance_at_end=D("1")))
    with pytest.raises(StatementError, match="closing_equals_ledger_balance"):
        publish(broken, tmp_path)
    assert not (tmp_path / "etc").exists()
