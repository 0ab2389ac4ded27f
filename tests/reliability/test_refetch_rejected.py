"""A stored transaction whose re-fetched version is now rejected leaves the ledger during a sync.

Each line of `REFETCHED` is a case: a first sync stores the USD account's rows as the ground
truth has them; the simulator then changes one stored row, and the next sync (not a rebuild)
must quarantine the new version with its reason, move the stored entry's last version to
`entry_history`, take its raw row out, and store every other row unchanged, alike on SQLite and
PostgreSQL. Syncing again changes nothing more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from ledger_etl.ledger import schema as s
from ledger_etl.ledger.rebuild import raw_without_entry
from ledger_etl.simulator import SimulatorServer
from tests.conftest import make_server, make_test_engine
from tests.integration.ledger_helpers import ledger_amounts, sync, truth
from tests.reliability.stored import stored_state

START, END = datetime(2025, 12, 20, tzinfo=UTC), datetime(2025, 12, 22, tzinfo=UTC)


@dataclass(frozen=True)
class Refetched:
    fields: dict[str, Any]  # set on the stored row when it is fetched again
    reason: str  # the quarantine reason's prefix


REFETCHED = {
    "now_foreign_currency": Refetched({"currency": "EURd"}, "currency_mismatch"),
    "now_huge_amount": Refetched({"size": "-1E+1000000"}, "amount_unrepresentable"),
    "now_nul_status": Refetched({"status": "PROC\x00ESSED"}, "text_nul"),
    "now_not_a_number": Refetched({"size": "twelve"}, "size"),  # fails to parse at all
}


def _usd_account(server: SimulatorServer) -> str:
    accounts = httpx.get(server.url + "/_sim/accounts", timeout=30).json()["accounts"]
    return next(a["accountId"] for a in accounts if a["currency"] == "USD")


def _override(server: SimulatorServer, reference: str, fields: dict[str, Any]) -> None:
    rule = {"endpoint": "transactions", "kind": "override", "fields": fields,
            "where": {"reference": reference}}  # fmt: skip
    body = json.dumps({"corrupt_rows": [rule]})
    headers = {"content-type": "application/json"}
    httpx.put(server.url + "/_sim/faults", content=body, headers=headers, timeout=30)
    assert httpx.get(server.url + "/_sim/faults", timeout=30).json()["corrupt_rows"]


def _evidence(engine: Engine, reference: str) -> tuple[list[tuple[str, str]], list[Any], int]:
    """(quarantine rows, entry_history versions of `reference`, raw rows of `reference`)."""
    q, h, raw = s.quarantine, s.entry_history, s.raw_transactions
    with engine.connect() as conn:
        quarantined = [tuple(r) for r in conn.execute(select(q.c.raw, q.c.reason))]
        history = [r.previous for r in conn.execute(select(h.c.previous).where(
            h.c.reference == reference))]  # fmt: skip
        raws = conn.execute(select(raw.c.reference).where(raw.c.reference == reference)).all()
    return quarantined, history, len(raws)  # type: ignore[return-value]


@pytest.mark.parametrize("name", list(REFETCHED))
def test_a_stored_row_now_rejected_leaves_the_ledger_with_its_evidence(
    name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    case = REFETCHED[name]
    server = make_server(start=date(2025, 12, 15), rate_limit_per_second=0)
    request.addfinalizer(server.stop)
    account = _usd_account(server)
    expected = {r["reference"]: Decimal(r["size"]) for r in truth(
        server, "transactions", account, START, END)}  # fmt: skip
    target = sorted(expected)[len(expected) // 2]
    engines = {}
    for backend in ("sqlite", "postgresql"):
        (tmp_path / backend).mkdir()
        engines[backend] = engine = make_test_engine(backend, tmp_path / backend, request)
        sync(server, engine, START, END, [account])
        assert ledger_amounts(engine, account, START, END) == expected

    _override(server, target, case.fields)
    states = {}
    for backend, engine in engines.items():
        report = sync(server, engine, START, END, [account])  # must not raise
        [summary] = [a.endpoints["transactions"] for a in report.accounts]
        assert summary.removed == 1
        wanted = {k: v for k, v in expected.items() if k != target}
        assert ledger_amounts(engine, account, START, END) == wanted
        quarantined, history, raws = _evidence(engine, target)
        [(raw, reason)] = quarantined
        assert target in raw and reason.startswith(case.reason), reason
        [previous] = history  # the entry's last version is kept
        assert Decimal(previous["amount"]) == expected[target]
        assert raws == 0 and raw_without_entry(engine, account, START, END) == 0
        states[backend] = stored_state(engine)

        again = sync(server, engine, START, END, [account])  # idempotent: nothing more leaves
        assert [a.endpoints["transactions"].removed for a in again.accounts] == [0]
        assert stored_state(engine) == states[backend]
        assert len(_evidence(engine, target)[1]) == 1
    assert states["sqlite"] == states["postgresql"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_rejected_row_whose_reference_cannot_be_a_key_removes_nothing(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The re-fetched version's own reference is hostile (a NUL, a lone surrogate): it names no
    stored entry, the sync does not fail on it, and the entry it was copied from stays."""
    server = make_server(start=date(2025, 12, 15), rate_limit_per_second=0)
    request.addfinalizer(server.stop)
    account = _usd_account(server)
    engine = make_test_engine(backend, tmp_path, request)
    sync(server, engine, START, END, [account])
    stored = ledger_amounts(engine, account, START, END)
    target = sorted(stored)[0]
    for hostile in (target + "\x00", target + "\ud800"):
        _override(server, target, {"reference": hostile, "currency": "EURd"})
        report = sync(server, engine, START, END, [account])
        assert [a.endpoints["transactions"].removed for a in report.accounts] == [0]
        assert ledger_amounts(engine, account, START, END) == stored
