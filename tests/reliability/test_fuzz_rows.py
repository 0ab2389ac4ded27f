"""Arbitrary JSON in every field of a history row: stored or quarantined, never a crash.

Each example is one transaction and one activity row whose fields hypothesis replaces with any
JSON value (text with NUL and lone surrogates, huge and tiny numbers, nested objects). They go
through the path a fetched window takes after the HTTP call (parse and key, assemble, normalize,
upsert) into a real SQLite file and a real PostgreSQL schema at once; both must store the same.
`CI=true` runs 2,000 examples, a local run 200 (`LEDGER_FUZZ_EXAMPLES` overrides both).
"""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, insert, select

from ledger_etl.capital.history import ACTIVITY, COMPLETE, TRANSACTIONS, FetchRecord, assemble
from ledger_etl.capital.history import _keep_rows as keep_rows
from ledger_etl.capital.models import dump_row
from ledger_etl.intervals import Window
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.chart import ChartOfAccounts
from ledger_etl.ledger.db import upgrade
from ledger_etl.ledger.ingest import ingest_history, start_run
from tests.conftest import make_test_engine
from tests.reliability.stored import stored_state

EXAMPLES = int(
    os.environ.get("LEDGER_FUZZ_EXAMPLES")
    or (2000 if os.environ.get("CI", "").lower() == "true" else 200)
)
WINDOW = Window(datetime(2025, 12, 20, tzinfo=UTC), datetime(2025, 12, 21, tzinfo=UTC))
TRANSACTION = {
    "date": "2025-12-20T12:00:00.000", "dateUtc": "2025-12-20T10:00:00.000",
    "instrumentName": "GOLD", "transactionType": "TRADE", "note": "Trade closed",
    "reference": "132126428272116", "size": "-80.43", "currency": "USDd", "status": "PROCESSED",
    "dealId": "00601567-0055-311e-0000-000084d60a14",
}  # fmt: skip
ACTIVITY_ROW = {
    "date": "2025-12-20T12:00:00", "dateUTC": "2025-12-20T10:00:00", "epic": "SILVER",
    "dealId": "00fb1ba3-2509-54c4-0000-000000000002", "source": "SYSTEM", "type": "POSITION",
    "status": "ACCEPTED",
    "details": {"dealReference": "p_00fb", "marketName": "Silver", "currency": "USDd",
                "size": Decimal("47.0"), "direction": "SELL", "level": Decimal("27.837"),
                "guaranteedStop": False, "workingOrderId": "w1",
                "actions": [{"actionType": "POSITION_OPENED", "affectedDealId": "d1"}]},
}  # fmt: skip

# Text that reaches every corner: NUL, other controls, lone surrogates, long runs.
hostile_text = st.text(
    st.characters(codec=None, exclude_categories=()) | st.sampled_from("\x00\ud800\udfff\u202e"),
    max_size=80,
) | st.sampled_from(["", " ", "USDd", "EURd", "usd", "P" * 40, "E" * 70, "x\ud800y", "\x00"])
numbers = (
    st.integers(-(10**40), 10**40)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.sampled_from([Decimal("1E+1000000"), Decimal("-1E-1000000"), Decimal("1E+30"),
                       Decimal("123456789012345678901.12345678"), Decimal("100000000000")])
)  # fmt: skip
scalars = st.none() | st.booleans() | numbers | hostile_text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=6,
)
# A number as text too: amounts usually travel as strings.
field_values = json_values | numbers.map(str)


def _hostile(base: dict[str, Any], nested: str | None = None) -> st.SearchStrategy[dict]:
    """`base` with any subset of its fields (and of `nested`'s) replaced by any JSON value."""
    replaced = st.fixed_dictionaries(
        {}, optional={name: field_values for name in base if name != nested}
    )
    parts = [replaced]
    if nested is not None:
        parts.append(st.fixed_dictionaries({}, optional={n: field_values for n in base[nested]}))
    return st.tuples(*parts).map(lambda p: _merge(base, nested, *p))


def _merge(base: dict[str, Any], nested: str | None, top: dict, inner: dict | None = None) -> dict:
    row = {**base, **top}
    if nested is not None and isinstance(row.get(nested), dict) and inner:
        row[nested] = {**row[nested], **inner}
    return row


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> dict:
    out = {}
    for backend in ("sqlite", "postgresql"):
        engine = make_test_engine(backend, tmp_path_factory.mktemp(backend), request)
        upgrade(engine)
        out[backend] = (engine, start_run(engine, "fuzz", {}))
    return out


_ACCOUNTS = itertools.count()


def _store(engine: Engine, run_id: str, account: str, spec: Any, item: Any) -> None:
    kept, problems = keep_rows(spec, WINDOW, [item], [dump_row(item)])
    record = FetchRecord(
        endpoint=spec.name, account_id=account, window_start=WINDOW.start,
        window_end=WINDOW.end, params={}, http_status=200, attempts=1, relogins=0, row_count=1,
        body_sha256=None, min_ts=None, max_ts=None, duration_s=0.0, ids=(), outcome=COMPLETE,
        rows=tuple(r for r, _, _ in kept), keys=tuple(k for _, k, _ in kept),
        problems=tuple(problems), raws=tuple(t for _, _, t in kept),
    )  # fmt: skip
    result = assemble(spec, account, WINDOW, [record])
    ingest_history(engine, run_id, result, ChartOfAccounts())


def _count(engine: Engine, table: Any, account: str, endpoint: str | None = None) -> int:
    query = select(func.count()).select_from(table).where(table.c.account_id == account)
    if endpoint is not None:
        query = query.where(table.c.endpoint == endpoint)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


# About 150 s at 2,000 examples on a busy two-core machine (six database transactions each).
@pytest.mark.slow
@settings(
    max_examples=EXAMPLES, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)  # fmt: skip
@given(tx=_hostile(TRANSACTION), act=_hostile(ACTIVITY_ROW, nested="details"))
def test_any_json_in_any_field_is_stored_or_quarantined_alike(
    engines: dict, tx: dict, act: dict
) -> None:
    account = f"FUZZ{next(_ACCOUNTS)}"
    states = {}
    for backend, (engine, run_id) in engines.items():
        with engine.begin() as conn:  # a USD account: a row in another currency is foreign
            conn.execute(insert(s.accounts).values(
                account_id=account, currency="USD", first_seen_at=WINDOW.start,
                last_seen_at=WINDOW.start,
            ))  # fmt: skip
        _store(engine, run_id, account, TRANSACTIONS, tx)  # never raises
        _store(engine, run_id, account, ACTIVITY, act)
        # Every row is either stored or quarantined (with a reason), exactly once.
        assert (
            _count(engine, s.ledger_entries, account)
            + _count(engine, s.quarantine, account, "transactions")
            == 1
        )
        assert (
            _count(engine, s.activities, account)
            + _count(engine, s.quarantine, account, "activity")
            == 1
        )
        states[backend] = stored_state(engine, account)
    assert states["sqlite"] == states["postgresql"]


def test_fuzz_runs_enough_examples_in_ci() -> None:
    if os.environ.get("CI", "").lower() == "true" and not os.environ.get("LEDGER_FUZZ_EXAMPLES"):
        assert EXAMPLES >= 2000
