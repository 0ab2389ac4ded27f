import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledger_etl.capital.models import (
    Account,
    Activity,
    RowProblem,
    Transaction,
    UnusableBalance,
    array_item_texts,
    decode_object,
    dump_row,
    parse_account,
    parse_activity,
    parse_transaction,
)

TRADE = {
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

ACTIVITY_BODY = b"""{"activities": [
 {"date": "2022-01-17T18:09:47.344", "dateUTC": "2022-01-17T15:09:47.344", "epic": "OIL_CRUDE",
  "dealId": "00018509-0001-54c4-0000-000080430164", "source": "USER", "type": "POSITION",
  "status": "ACCEPTED",
  "details": {"dealReference": "p_00018509", "marketName": "Crude Oil", "currency": "USD",
              "size": 0.1, "direction": "BUY", "level": 75.31, "guaranteedStop": false,
              "workingOrderId": "o_1", "stopLevel": 70.05, "profitLevel": 80,
              "actions": [{"actionType": "POSITION_OPENED", "affectedDealId": "d1"}],
              "trailingStop": false}}]}"""


def test_transaction_parses_exactly():
    tx = parse_transaction(TRADE)
    assert isinstance(tx, Transaction)
    assert tx.size == Decimal("-80.43") and isinstance(tx.size, Decimal)
    assert tx.date_utc == datetime(2026, 7, 1, 23, 46, 31, 281000, tzinfo=UTC)
    assert tx.date == "2026-07-02T01:46:31.281"  # local time kept raw
    assert tx.instrument_name == "GOLD" and tx.deal_id.startswith("00601567")
    assert tx.type_known and tx.unknown_enum_fields() == []
    assert tx.currency == "USDd"


def test_decimal_sizes_add_exactly():
    a = parse_transaction({**TRADE, "size": "0.1"})
    b = parse_transaction({**TRADE, "size": "0.2"})
    assert a.size + b.size == Decimal("0.3")
    assert parse_transaction({**TRADE, "size": 5}).size == Decimal(5)
    huge = "12345678901234567890.123456789"
    assert str(parse_transaction({**TRADE, "size": huge}).size) == huge


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-07-01T23:46:31.281", datetime(2026, 7, 1, 23, 46, 31, 281000, tzinfo=UTC)),
        ("2026-07-01T23:46:31", datetime(2026, 7, 1, 23, 46, 31, tzinfo=UTC)),
        ("2026-07-01T23:46:31.5", datetime(2026, 7, 1, 23, 46, 31, 500000, tzinfo=UTC)),
    ],
)
def test_utc_dates_with_and_without_millis(raw, expected):
    tx = parse_transaction({**TRADE, "dateUtc": raw})
    assert tx.date_utc == expected and tx.date_utc.tzinfo is UTC


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"size": "abc"}, "size"),
        ({"size": 1.5}, "size"),  # a float means the body was decoded lossily
        ({"size": "NaN"}, "size"),
        ({"size": True}, "size"),
        ({"reference": None}, "reference"),
        ({"reference": ""}, "reference"),
        ({"dateUtc": "2026-07-01"}, "dateUtc"),
        ({"dateUtc": "2026-07-01T23:46:31+02:00"}, "dateUtc"),
        ({"dateUtc": "yesterday"}, "dateUtc"),
    ],
)
def test_bad_transaction_rows_become_problems(change, field):
    row = {**TRADE, **change}
    result = parse_transaction(row)
    assert isinstance(result, RowProblem)
    assert result.row == row
    assert field in result.reason


def test_missing_reference_is_a_problem():
    row = {k: v for k, v in TRADE.items() if k != "reference"}
    result = parse_transaction(row)
    assert isinstance(result, RowProblem) and "reference" in result.reason


def test_non_object_row_is_a_problem():
    result = parse_activity("oops")
    assert isinstance(result, RowProblem) and result.row == {"_value": "oops"}


def test_unknown_transaction_type_and_extra_keys_kept():
    tx = parse_transaction({**TRADE, "transactionType": "NEW_KIND", "cashTransaction": False})
    assert isinstance(tx, Transaction)
    assert not tx.type_known and tx.unknown_enum_fields() == ["transactionType"]
    assert tx.extra_fields == {"cashTransaction": False}
    dumped = tx.model_dump(by_alias=True)
    assert dumped["cashTransaction"] is False and dumped["dateUtc"] == tx.date_utc


def test_reference_as_json_integer_keeps_digits():
    tx = parse_transaction({**TRADE, "reference": 132126428272116})
    assert tx.reference == "132126428272116"


def test_models_are_frozen():
    tx = parse_transaction(TRADE)
    with pytest.raises(ValueError):
        tx.size = Decimal(1)


def test_activity_detailed_numbers_are_exact_decimals():
    body = decode_object(ACTIVITY_BODY, "activities")
    activity = parse_activity(body["activities"][0])
    assert isinstance(activity, Activity)
    details = activity.details
    assert details.size == Decimal("0.1") and details.level == Decimal("75.31")
    assert details.profit_level == Decimal(80) and details.stop_level == Decimal("70.05")
    assert details.actions[0].action_type == "POSITION_OPENED"
    assert details.actions[0].affected_deal_id == "d1"
    assert details.working_order_id == "o_1" and details.guaranteed_stop is False
    assert details.extra_fields == {"trailingStop": False}
    assert activity.unknown_enum_fields() == []
    assert activity.date_utc == datetime(2022, 1, 17, 15, 9, 47, 344000, tzinfo=UTC)


def test_activity_unknown_enums_are_accepted_and_flagged():
    row = {
        "dateUTC": "2022-01-17T15:09:47",
        "source": "ROBOT",
        "type": "POSITION",
        "status": "PENDING",
        "details": {"direction": "SIDEWAYS", "level": ""},
    }
    activity = parse_activity(row)
    assert isinstance(activity, Activity)
    assert activity.unknown_enum_fields() == ["source", "status", "details.direction"]
    assert activity.details.level is None  # empty level means "not given"


def test_activity_without_details_and_content_key():
    row = {"dateUTC": "2022-01-17T15:09:47.344", "dealId": "d", "epic": "GOLD", "type": "SWAP"}
    activity = parse_activity(row)
    assert activity.details is None
    assert activity.content_key() == (
        activity.date_utc, "d", "GOLD", "SWAP", None, None, None, None, None,
    )  # fmt: skip


def test_decode_object_rejects_non_objects():
    with pytest.raises(ValueError, match="not JSON"):
        decode_object(b"<html>busy</html>")
    with pytest.raises(ValueError, match="not JSON"):
        decode_object(b'{"transactions": [')
    with pytest.raises(ValueError, match="not an object"):
        decode_object(b"[]")
    with pytest.raises(ValueError, match="'transactions'"):
        decode_object(b"{}", "transactions")
    assert decode_object(b'{"a": 0.30000000000000001}')["a"] == Decimal("0.30000000000000001")


def test_a_lenient_history_body_keeps_broken_text_to_its_row():
    body = b'{"transactions": [{"note": "ok\xff"}, {"note": "a\x07b\tc"}, {"note": "fine"}]}'
    with pytest.raises(ValueError, match="not JSON"):
        decode_object(body)  # any other body: broken text is a malformed answer
    rows = decode_object(body, "transactions", lenient=True)["transactions"]
    assert [r["note"] for r in rows] == ["ok\udcff", "a\x07b\tc", "fine"]
    texts = array_item_texts(body, "transactions")
    assert texts == ['{"note": "ok\udcff"}', '{"note": "a\x07b\tc"}', '{"note": "fine"}']


def test_a_hostile_balance_block_never_fails_its_account():
    for block in ({"balance": "NaN"}, {"balance": {"x": 1}}, "92.89", [1], {"balance": True}):
        account = parse_account({"accountId": "1", "balance": block})
        assert isinstance(account, Account) and isinstance(account.balance, UnusableBalance)
        assert account.balance.raw == block and account.balance.reason
    assert parse_account({"accountId": "1", "balance": None}).balance is None


def test_account_balance_decimals():
    body = json.loads(
        '{"accountId": "123", "accountName": "USD", "status": "ENABLED", "accountType": "CFD",'
        ' "preferred": true, "currency": "USD", "symbol": "$",'
        ' "balance": {"balance": 92.89, "deposit": 90.38, "profitLoss": 2.51, "available": 64.66}}',
        parse_float=Decimal,
    )
    account = parse_account(body)
    assert isinstance(account, Account)
    assert account.balance.balance == Decimal("92.89")
    assert account.balance.profit_loss == Decimal("2.51")
    assert account.extra_fields == {"symbol": "$"}
    assert isinstance(parse_account({"accountName": "x"}), RowProblem)


# --- each row's text as received ----------------------------------------------------------------


def test_array_item_texts_keeps_each_row_exactly_as_sent():
    texts = array_item_texts(ACTIVITY_BODY, "activities")
    assert texts is not None and len(texts) == 1
    assert texts[0].startswith('{"date": "2022-01-17T18:09:47.344"') and texts[0].endswith("}}")
    assert '"size": 0.1' in texts[0] and '"profitLevel": 80' in texts[0]  # numbers stay numbers
    decoded = decode_object(ACTIVITY_BODY)["activities"][0]
    assert json.loads(texts[0], parse_float=Decimal) == decoded


def test_array_item_texts_handles_spacing_unicode_nesting_and_an_empty_array():
    body = (
        ' \n{ "other" : {"transactions": [1]} ,"transactions" :[ {"note":"Zürich \\u00e9 [x], {y}"}'
        ' ,\n\t{"size":-1.50,"a":[{"b":null}]} ], "tail": true }\n'
    ).encode()
    assert array_item_texts(body, "transactions") == [
        '{"note":"Zürich \\u00e9 [x], {y}"}',
        '{"size":-1.50,"a":[{"b":null}]}',
    ]
    assert array_item_texts(b'{"transactions": []}', "transactions") == []


def test_array_item_texts_takes_the_last_of_a_repeated_key_as_json_loads_does():
    body = b'{"transactions": [{"a": 1}], "transactions": [{"b": 2}, {"c": 3}]}'
    assert array_item_texts(body, "transactions") == ['{"b": 2}', '{"c": 3}']


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[]",
        b'{"transactions": [{"a": 1}',
        b'{"transactions": [{"a": 1} {"b": 2}]}',
        b'{"transactions" [1]}',
        b'{"transactions": [1]',
        '{"transactions": ["caf\u00e9"]}'.encode("utf-16"),
    ],
)
def test_array_item_texts_gives_up_on_what_it_cannot_split(body):
    assert array_item_texts(body, "transactions") is None  # the caller falls back: no bad split


def test_array_item_texts_without_the_key_is_none():
    assert array_item_texts(b'{"activities": [1]}', "transactions") is None


def test_dump_row_keeps_decimal_digits():
    assert dump_row({"size": Decimal("-80.430"), "n": "é"}) == '{"size":"-80.430","n":"é"}'
