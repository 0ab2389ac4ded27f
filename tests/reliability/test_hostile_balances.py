"""A hostile balance in `GET /accounts` costs that balance observation, never the sync.

Each line of `BALANCES` is a case: the simulator changes the USD account's balance block (over
real HTTP; ground truth is unaffected) and a sync must store the history exactly as the ground
truth has it, record no balance observation for that account (the other accounts keep theirs),
keep the block in quarantine with the reason given, report the reason, and the month's statement
must say why it cannot reconcile: on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from ledger_etl.ledger import schema as s
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.model import Period
from ledger_etl.statements.query import read_statement_inputs
from tests.conftest import make_server, make_test_engine
from tests.integration.ledger_helpers import ledger_amounts, sync, truth_amounts

START, END = datetime(2025, 12, 20, tzinfo=UTC), datetime(2025, 12, 21, tzinfo=UTC)
MONTH = Period(
    "2025-12", datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2025, 11, 1, tzinfo=UTC),
)  # fmt: skip
MISSING, UNUSABLE = "balance_missing", "balance_unusable"

# What the account's `balance` object becomes ("balance.x" sets one of its fields), and the
# reason's prefix. `{"$number": text}` is sent as that JSON number literally.
BALANCES: dict[str, tuple[dict[str, Any], str]] = {
    "not_a_number": ({"balance.balance": "12,5O"}, UNUSABLE),
    "empty_text": ({"balance.balance": ""}, MISSING),
    "huge_exponent_text": ({"balance.balance": "1E+1000000"}, UNUSABLE),
    "huge_exponent_number": ({"balance.balance": {"$number": "1E+1000000"}}, UNUSABLE),
    "tiny_exponent_number": ({"balance.balance": {"$number": "1E-1000000"}}, UNUSABLE),
    "nine_decimals": ({"balance.balance": "92.123456789"}, UNUSABLE),
    "31_integer_digits": ({"balance.balance": "1" + "0" * 30}, UNUSABLE),
    "nan_text": ({"balance.balance": "NaN"}, UNUSABLE),
    "nan_number": ({"balance.balance": {"$number": "NaN"}}, UNUSABLE),
    "infinity_number": ({"balance.balance": {"$number": "-Infinity"}}, UNUSABLE),
    "boolean": ({"balance.balance": True}, UNUSABLE),
    "nested_object": ({"balance.balance": {"amount": "92.89"}}, UNUSABLE),
    "list": ({"balance.balance": ["92.89"]}, UNUSABLE),
    "null": ({"balance.balance": None}, MISSING),
    "key_missing": ({"balance": {"deposit": "90.38", "available": "64.66"}}, MISSING),
    "block_null": ({"balance": None}, MISSING),
    "block_is_text": ({"balance": "92.89"}, UNUSABLE),
    "block_is_list": ({"balance": [{"balance": "92.89"}]}, UNUSABLE),
    "deposit_hostile": ({"balance.deposit": {"$number": "9E+999999"}}, UNUSABLE),
    "available_nested": ({"balance.available": {"x": {"y": 1}}}, UNUSABLE),
}


# One case of each kind runs by default on both backends; the rest run in CI (marked slow).
DEFAULT = {"not_a_number", "huge_exponent_number", "nan_number", "nested_object", "key_missing",
           "block_is_text"}  # fmt: skip
CASES = [
    pytest.param(name, backend, id=f"{backend}-{name}",
                 marks=[] if name in DEFAULT else [pytest.mark.slow])
    for backend in ("sqlite", "postgresql")
    for name in BALANCES
]  # fmt: skip


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    simulator = make_server(start=date(2025, 12, 15), rate_limit_per_second=0)
    yield simulator
    simulator.stop()


def _accounts(server: SimulatorServer) -> tuple[str, list[str]]:
    """The USD account, and every account the API lists."""
    accounts = httpx.get(server.url + "/_sim/accounts", timeout=30).json()["accounts"]
    usd = next(a["accountId"] for a in accounts if a["currency"] == "USD")
    return usd, [a["accountId"] for a in accounts]


def _set_faults(server: SimulatorServer, profile: dict[str, Any]) -> None:
    body = json.dumps(profile)
    headers = {"content-type": "application/json"}
    response = httpx.put(server.url + "/_sim/faults", content=body, headers=headers, timeout=30)
    response.raise_for_status()


def _observed(engine: Engine) -> set[str]:
    b = s.balance_observations
    with engine.connect() as conn:
        return {row.account_id for row in conn.execute(select(b.c.account_id))}


def _quarantined(engine: Engine) -> list[tuple[str, str, str, str]]:
    q = s.quarantine
    with engine.connect() as conn:
        query = select(q.c.account_id, q.c.endpoint, q.c.raw, q.c.reason)
        return [tuple(row) for row in conn.execute(query)]


@pytest.mark.parametrize(("name", "backend"), CASES)
def test_a_hostile_balance_is_skipped_with_a_reason_and_the_history_stored(
    name: str,
    backend: str,
    server: SimulatorServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    fields, reason = BALANCES[name]
    ledger_engine = make_test_engine(backend, tmp_path, request)
    usd, listed = _accounts(server)
    rule = {"endpoint": "accounts", "kind": "override", "where": {"accountId": usd},
            "fields": fields}  # fmt: skip
    _set_faults(server, {"corrupt_rows": [rule]})
    try:
        report = sync(server, ledger_engine, START, END, [usd])  # must not raise
    finally:
        _set_faults(server, {})

    assert report.ok
    assert ledger_amounts(ledger_engine, usd, START, END) == truth_amounts(server, usd, START, END)
    assert _observed(ledger_engine) == set(listed) - {usd}  # the others keep theirs
    [(account, endpoint, _raw, stored_reason)] = _quarantined(ledger_engine)
    assert (account, endpoint) == (usd, "accounts")
    assert stored_reason.startswith(reason), stored_reason
    [entry] = report.accounts
    assert entry.balance_skipped == stored_reason
    assert report.as_dict()["balances_skipped"] == {usd: stored_reason}

    statement = build_statement(read_statement_inputs(ledger_engine, usd, MONTH))
    assert statement.reconciliation.status == "UNVERIFIED"
    assert stored_reason in (statement.reconciliation.reason or "")


def test_a_sound_balance_is_observed_and_nothing_quarantined(
    server: SimulatorServer, ledger_engine: Engine
) -> None:
    """The control: the same sync without the fault records every account's balance."""
    usd, listed = _accounts(server)
    report = sync(server, ledger_engine, START, END, [usd])
    assert _observed(ledger_engine) == set(listed)
    assert _quarantined(ledger_engine) == []
    assert report.accounts[0].balance_skipped is None
    assert report.as_dict()["balances_skipped"] == {}
