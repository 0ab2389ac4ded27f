"""The webhook's edge over real HTTP: content types, size, authentication, secrets, schema."""

from __future__ import annotations

import json
import logging

import jsonschema
import pytest
from sqlalchemy import select

from ledger_etl.intents.auth import sign
from ledger_etl.intents.payload import payload_schema
from ledger_etl.ledger.schema import trade_intents, trading_changelog
from tests.intents.conftest import SECRET, intent, orders_posted, wait_final


def test_text_plain_gets_a_clear_415_and_nothing_is_stored(start_service, account_id, intents_db):
    svc = start_service()
    # What TradingView sends when the alert message is not valid JSON.
    answer = svc.http.post(
        "/intents", content=b"buy GOLD now", headers={"Content-Type": "text/plain"}
    )
    assert answer.status_code == 415
    assert "application/json" in answer.json()["detail"]
    assert "TradingView" in answer.json()["detail"]
    broken = svc.http.post(
        "/intents", content=b'{"secret": "x",', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.json()["error"] == "invalid_json"
    array = svc.http.post("/intents", json=[1, 2])
    assert array.status_code == 400
    with intents_db.connect() as conn:
        assert conn.execute(select(trade_intents)).all() == []


def test_an_oversized_body_gets_413(start_service, account_id):
    svc = start_service()
    body = intent(account_id, alert_id="x" * 20)
    body["padding"] = "p" * 20_000
    answer = svc.post(body)
    assert answer.status_code == 413


def test_a_wrong_secret_gets_401_without_detail_counted_and_no_order(
    start_service, account_id, intents_sim, intents_db
):
    svc = start_service()
    before = orders_posted(intents_sim)
    for wrong in ("nope", "", None, 12345, SECRET + "x"):
        answer = svc.post(intent(account_id, alert_id="bad", secret=wrong))
        assert answer.status_code == 401
        assert answer.json() == {"error": "unauthorized"}
    no_secret = intent(account_id, alert_id="bad")
    del no_secret["secret"]
    assert svc.post(no_secret).status_code == 401
    health = svc.http.get("/health").json()
    assert health["auth_failures"]["secret"] == 6
    assert svc.get("00000000-0000-0000-0000-000000000000").status_code == 404
    assert svc.http.get("/intents/whatever").status_code == 401  # reading needs the secret too
    with intents_db.connect() as conn:
        assert conn.execute(select(trade_intents)).all() == []
    assert orders_posted(intents_sim) == before


def test_a_secret_in_the_query_string_is_refused(start_service, account_id, intents_db):
    svc = start_service()
    body = intent(account_id, alert_id="q")
    answer = svc.http.post("/intents", params={"secret": SECRET}, json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "secret_in_query"
    assert SECRET not in answer.text
    assert svc.http.get("/health").json()["auth_failures"]["query_secret"] == 1
    with intents_db.connect() as conn:
        assert conn.execute(select(trade_intents)).all() == []


def test_hmac_signature_when_configured(start_service, account_id):
    key = "hmac-key-for-tests"
    svc = start_service(hmac_secret=key, live=False)
    raw = json.dumps(intent(account_id, alert_id="signed")).encode()
    headers = {"Content-Type": "application/json"}
    unsigned = svc.http.post("/intents", content=raw, headers=headers)
    assert unsigned.status_code == 401
    forged = svc.http.post(
        "/intents", content=raw, headers={**headers, "X-Signature": sign(raw, "other")}
    )
    assert forged.status_code == 401
    signed = svc.http.post(
        "/intents", content=raw, headers={**headers, "X-Signature": sign(raw, key)}
    )
    assert signed.status_code == 202
    assert svc.http.get("/health").json()["auth_failures"]["signature"] == 2


def test_an_address_outside_the_allowlist_gets_401(start_service, account_id):
    svc = start_service(allowed_ips=("52.89.214.238", "10.0.0.0/8"), live=False)
    answer = svc.post(intent(account_id, alert_id="ip"))
    assert answer.status_code == 401 and answer.json() == {"error": "unauthorized"}
    assert svc.http.get("/health").json()["auth_failures"]["address"] == 1
    open_svc = start_service(allowed_ips=("127.0.0.0/8",), live=False)
    assert open_svc.post(intent(account_id, alert_id="ip")).status_code == 202


def test_the_secret_is_in_no_row_no_log_line_and_no_answer(
    start_service, account_id, intents_db, caplog
):
    caplog.set_level(logging.DEBUG)
    svc = start_service(live=False)
    answer = svc.post(intent(account_id, alert_id="quiet", size=1))
    assert answer.status_code == 202
    invalid = svc.post(intent(account_id, alert_id="quiet-2", size=-1))
    assert invalid.status_code == 422
    final = wait_final(svc, answer.json()["intent"]["id"])
    for text in (answer.text, invalid.text, json.dumps(final), caplog.text):
        assert SECRET not in text
    with intents_db.connect() as conn:
        rows = [r._asdict() for r in conn.execute(select(trade_intents))]
        log_rows = [r._asdict() for r in conn.execute(select(trading_changelog))]
    assert rows and "secret" not in rows[0]["payload"]
    assert SECRET not in json.dumps(rows, default=str) + json.dumps(log_rows, default=str)


def test_the_published_schema_is_valid_and_matches_the_service(start_service, account_id):
    svc = start_service(live=False)
    published = svc.http.get("/intents/schema").json()
    assert published == json.loads(json.dumps(payload_schema()))
    jsonschema.Draft202012Validator.check_schema(published)
    validator = jsonschema.Draft202012Validator(published)
    good = intent(account_id, alert_id="schema", size="1.5", stop_distance=10, profit_distance=20)
    assert list(validator.iter_errors(good)) == []
    for bad in (
        {**good, "action": "hold"},
        {**good, "stop_distnce": 5},  # a misspelt field is refused, not ignored
        {**good, "size": -1},
        {k: v for k, v in good.items() if k != "account"},
    ):
        assert list(validator.iter_errors(bad)), bad
        answer = svc.post(bad)
        assert answer.status_code == 422, bad


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_intents_are_refused(start_service, account_id, method):
    svc = start_service(live=False)
    assert svc.http.request(method, "/intents").status_code == 405
