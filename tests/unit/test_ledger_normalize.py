"""Pure normalization and the chart of accounts."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from ledger_etl.capital.models import Transaction, parse_transaction
from ledger_etl.ledger.chart import (
    DEFAULT_TYPES,
    SUSPENSE,
    ChartError,
    ChartOfAccounts,
    load_chart,
)
from ledger_etl.ledger.normalize import (
    LedgerRow,
    Rejected,
    canonical_amount,
    normalize_currency,
    normalize_transaction,
)
from ledger_etl.ledger.schema import to_units

DOCUMENTED_TYPES = """INACTIVITY_FEE RESERVE VOID UNRESERVE WRITE_OFF_OR_CREDIT CREDIT_FACILITY
FX_COMMISSION COMPLAINT_SETTLEMENT DEPOSIT WITHDRAWAL REFUND WITHDRAWAL_MONEY_BACK TRADE SWAP
TRADE_COMMISSION TRADE_COMMISSION_GSL NEGATIVE_BALANCE_PROTECTION TRADE_CORRECTION CHARGEBACK
ADJUSTMENT BONUS TRANSFER CORPORATE_ACTION CONVERSION REBATE TRADE_SLIPPAGE_PROTECTION""".split()


def _tx(**overrides: object) -> Transaction:
    row = {
        "date": "2026-07-02T01:46:31.281",
        "dateUtc": "2026-07-01T23:46:31.281",
        "instrumentName": "GOLD",
        "transactionType": "TRADE",
        "note": "Trade closed",
        "reference": "132126428272116",
        "size": "-80.43",
        "currency": "USDd",
        "status": "PROCESSED",
        "dealId": "00601567-0055-311e-0000-000084d60a14",
    }
    row.update(overrides)
    parsed = parse_transaction(row)
    assert isinstance(parsed, Transaction), parsed
    return parsed


def test_every_documented_type_has_an_account() -> None:
    assert len(DOCUMENTED_TYPES) == 26
    chart = ChartOfAccounts()
    for tx_type in DOCUMENTED_TYPES:
        code, known = chart.account_for(tx_type)
        assert known and code != SUSPENSE and chart.name_of(code) != code, tx_type
    assert set(DEFAULT_TYPES) == set(DOCUMENTED_TYPES)


def test_normalized_trade() -> None:
    row = normalize_transaction("A1", _tx(), ChartOfAccounts())
    assert isinstance(row, LedgerRow)
    assert row.amount == Decimal("-80.43") and row.currency == "USD"
    assert row.currency_raw == "USDd" and row.ledger_account == "4000" and row.flags == ""
    assert row.posted_at.isoformat() == "2026-07-01T23:46:31.281000+00:00"


@pytest.mark.parametrize(
    ("size", "spelled"),
    [("20.00", "20"), ("-0.00", "0"), ("0", "0"), ("1.50", "1.5"), ("-100", "-100"),
     ("0.00000001", "0.00000001"), ("1234567890123456789012345678901", None)],
)  # fmt: skip
def test_amounts_come_out_in_their_plain_spelling(size: str, spelled: str | None) -> None:
    row = normalize_transaction("A1", _tx(size=size), ChartOfAccounts())
    if spelled is None:
        assert isinstance(row, Rejected) and "out of range" in row.reason
        return
    assert isinstance(row, LedgerRow)
    # The same Decimal as the plain spelling parses to (20, not 2E+1), equal to what was sent.
    assert row.amount.as_tuple() == Decimal(spelled).as_tuple() and row.amount == Decimal(size)
    units = int(row.amount.scaleb(8))  # what the SQLite bulk path stores
    assert units == to_units(Decimal(size))


def test_same_value_same_hash_different_value_different_hash() -> None:
    chart = ChartOfAccounts()
    a = normalize_transaction("A1", _tx(size="20.0"), chart)
    b = normalize_transaction("A1", _tx(size="20.00"), chart)
    c = normalize_transaction("A1", _tx(size="20.01"), chart)
    assert isinstance(a, LedgerRow) and isinstance(b, LedgerRow) and isinstance(c, LedgerRow)
    assert a.row_sha256 == b.row_sha256 != c.row_sha256


def test_unknown_type_goes_to_suspense_and_is_flagged() -> None:
    row = normalize_transaction("A1", _tx(transactionType="SURPRISE"), ChartOfAccounts())
    assert isinstance(row, LedgerRow)
    assert (row.ledger_account, row.flags) == (SUSPENSE, "unknown_type")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"currency": "QQQ"}, "unknown currency"),
        ({"size": "0.000000001"}, "decimal places"),
        ({"size": "1e40"}, "out of range"),
    ],
)
def test_rejections_say_why(overrides: dict, reason: str) -> None:
    row = normalize_transaction("A1", _tx(**overrides), ChartOfAccounts())
    assert isinstance(row, Rejected) and reason in row.reason


def test_control_characters_and_long_notes_are_cleaned_and_flagged() -> None:
    row = normalize_transaction("A1", _tx(note="\u202eabc\x07\x00" + "x" * 5000), ChartOfAccounts())
    assert isinstance(row, LedgerRow)
    assert row.note is not None and "\x07" not in row.note and "\x00" not in row.note
    assert len(row.note) <= 2000 and "note_cleaned" in row.flags


def test_currencies() -> None:
    assert normalize_currency("USDd") == "USD"
    assert normalize_currency("EUR") == "EUR"
    assert normalize_currency("usd") is None and normalize_currency("XYZd") is None
    assert canonical_amount(Decimal("-0.00")) == "0" and canonical_amount(Decimal("2E+1")) == "20"


def test_chart_override_file(tmp_path: Path) -> None:
    path = tmp_path / "chart.json"
    path.write_text(json.dumps({"accounts": {"4001": "Gold P&L"}, "types": {"TRADE": "4001"}}))
    chart = load_chart(path)
    assert chart.account_for("TRADE") == ("4001", True)
    assert chart.account_for("SWAP") == ("6000", True)
    path.write_text(json.dumps({"types": {"TRADE": "0000"}}))
    with pytest.raises(ChartError, match="undefined account codes"):
        load_chart(path)
    path.write_text("{broken")
    with pytest.raises(ChartError, match="cannot read"):
        load_chart(path)


HOSTILE_TRANSACTIONS = [
    # (field overrides, expected reason prefix); one line per variant
    ({"size": "123456789012345678901.12345678"}, None),
    ({"size": "-999999999999999999999999999999.99999999"}, None),
    ({"size": "1E+1000000"}, "amount_unrepresentable"),
    ({"size": "-1E+1000000"}, "amount_unrepresentable"),
    ({"size": Decimal("1E+1000000")}, "amount_unrepresentable"),
    ({"size": "1E-1000000"}, "amount_unrepresentable"),
    ({"size": "1E+30"}, "amount"),
    ({"note": "x\ud800y"}, "text_surrogate"),
    ({"status": "PROCESSED\ud800"}, "text_surrogate"),
    ({"reference": "r\x00x"}, "text_nul"),
    ({"status": "PROC\x00ESSED"}, "text_nul"),
    ({"dealId": "d\x00"}, "text_nul"),
    ({"transactionType": "TRADE\x00"}, "text_nul"),
]


@pytest.mark.parametrize(("overrides", "reason"), HOSTILE_TRANSACTIONS)
def test_hostile_transactions_are_exact_or_rejected_with_a_reason(
    overrides: dict, reason: str | None
) -> None:
    out = normalize_transaction("ACC", _tx(**overrides), ChartOfAccounts())
    if reason is None:
        assert isinstance(out, LedgerRow)
        assert out.amount == Decimal(str(overrides["size"]))  # not rounded
        assert canonical_amount(out.amount) == overrides["size"]
    else:
        assert isinstance(out, Rejected) and out.reason.startswith(reason), out
