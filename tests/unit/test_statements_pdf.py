"""`statement.pdf`: what it states (read back with pypdf), hostile text, determinism, and
verify catching a PDF that disagrees with `statement.json`."""

from __future__ import annotations

import io
import json
import re
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader

from ledger_etl.statements import pdf_fonts, writers_pdf
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.crosscheck import check_content
from ledger_etl.statements.export import publish_built
from ledger_etl.statements.verify import verify_tree
from ledger_etl.statements.writers_pdf import CFD_WARNING, write_pdf
from tests.unit.statement_month import OCTOBER, october_statement, with_closing
from tests.unit.test_statements_build import inputs

HOSTILE_NOTE = "refund 😀 for 東京の取引 =cmd|' /C calc'!A0\ttab\rreturn"
CJK_NAME = "口座 Konto Счёт"


def _pages(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def _render(statement) -> bytes:  # type: ignore[no-untyped-def]
    handle = io.BytesIO()
    write_pdf(statement, handle)
    return handle.getvalue()


def test_the_pdf_states_the_statement(tmp_path: Path) -> None:
    statement = october_statement()
    folder = publish_built(statement, tmp_path, run_id="t").folder
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    doc = json.loads((folder / "statement.json").read_text(encoding="utf-8"))
    assert "statement.pdf" in manifest["files"] and manifest["format_totals"]["pdf"]["rows"] == 200
    pages = _pages((folder / "statement.pdf").read_bytes())
    assert 3 <= len(pages) <= 8
    first = pages[0].splitlines()
    for line in ("Account ACC-OCT", "Account name Main USD account", "Currency USD",
                 "Status FINAL", "Opening balance 25000.00 USD",
                 f"Closing balance {doc['closing_balance']} USD",
                 f"Movement 200 entries {doc['movement']} USD",
                 "TRADE - Realised trading P&L (4000) 78 entries -103.75 USD",
                 "Result RECONCILED", "Broker balance observed at 2025-11-02 09:30:00 UTC",
                 "Difference 0.00 USD", "Transactions: 200 entries"):  # fmt: skip
        assert line in first, (line, first)
    warning = " ".join(CFD_WARNING.split()[:6])
    table_pages = 0
    for number, text in enumerate(pages, 1):
        assert f"content sha256 {manifest['content_hash']} page {number} of {len(pages)}" in text
        assert warning in text
        table_pages += (
            "Posted at (UTC) Reference Type Instrument Amount (USD) Balance (USD)" in text
        )
    assert table_pages >= 3  # the table header repeats after each page break
    text = "\n".join(pages)
    for e in doc["entries"]:  # every entry, with its amount and running balance as in the JSON
        assert re.search(rf"{e['reference']} .* {re.escape(e['amount'])} "
                         rf"{re.escape(e['running_balance'])} ", text), e  # fmt: skip
    assert "Windows fetched: transactions 31 windows" in text and "Gaps none" in text
    assert "Supersedes nothing: the first version" in text
    assert verify_tree(folder) == []


def test_provisional_reasons_and_the_diff_against_the_superseded_version(tmp_path: Path) -> None:
    first = build_statement(inputs(observation=None, observation_window=None))
    publish_built(first, tmp_path, run_id="a")
    lines = list(first.lines)
    lines[0] = replace(lines[0], entry=replace(lines[0].entry, note="corrected"))
    second = publish_built(replace(first, lines=tuple(lines)), tmp_path, run_id="b")
    assert second.version == 2
    text = "\n".join(_pages((second.folder / "statement.pdf").read_bytes()))
    assert "Status PROVISIONAL" in text
    assert "- reconciliation UNVERIFIED: no broker balance observation" in text
    assert "Supersedes v1 (content sha256" in text and "Entries changed: 1 a0" in text
    assert "a0 note: None -> corrected" in text
    assert verify_tree(tmp_path) == []


def test_hostile_text_is_drawn_or_replaced_and_said_so(tmp_path: Path) -> None:
    statement = october_statement(note=HOSTILE_NOTE, account_name=CJK_NAME)
    result = publish_built(statement, tmp_path, run_id="t")
    text = "\n".join(_pages((result.folder / "statement.pdf").read_bytes()))
    assert "Characters not shown" in text and "statement.json holds the exact text" in text
    assert "Note: refund" in text and "=cmd|' /C calc'!A0 tab return" in text
    if pdf_fonts.dejavu_dir() is not None:
        assert "Konto Счёт" in text  # Cyrillic is in DejaVu; CJK is not
    assert verify_tree(result.folder) == []


def test_without_dejavu_the_core_font_replaces_what_latin_1_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pdf_fonts, "DEJAVU_DIRS", ())
    pdf = _render(october_statement(note=HOSTILE_NOTE, account_name=CJK_NAME))
    text = "\n".join(_pages(pdf))
    assert "Account name ?? Konto ????" in text
    assert "Characters not shown" in text and "Note: refund ? for ?????" in text


def test_the_same_statement_gives_the_same_bytes() -> None:
    statement = october_statement(note=HOSTILE_NOTE)
    first, second = _render(statement), _render(statement)
    assert first == second
    created = PdfReader(io.BytesIO(first)).metadata.creation_date
    assert created is not None and created.replace(tzinfo=None) == OCTOBER.end.replace(tzinfo=None)
    assert _render(october_statement(count=199)) != first


def test_verify_catches_a_pdf_that_states_another_closing(tmp_path: Path) -> None:
    """Unit twin of the resealed forgery in tests/reliability/test_published_folders.py."""
    statement = october_statement()
    folder = publish_built(statement, tmp_path, run_id="t").folder
    forged = replace(with_closing(statement, statement.closing_balance + Decimal(1)), version=1)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    path = folder / "statement.pdf"
    path.chmod(0o640)
    with pytest.MonkeyPatch.context() as patch:  # the forger keeps the real hash in the footer
        patch.setattr(writers_pdf, "statement_content_hash", lambda _s: manifest["content_hash"])
        path.write_bytes(_render(forged))
    problems = check_content(folder, manifest)
    assert any("statement.pdf closing balance" in p for p in problems), problems
    assert any("statement.pdf movement" in p for p in problems), problems
