"""Idempotence on both backends: any split, order or duplication of the same history gives the
same ledger; concurrent ingestions neither duplicate nor fail."""

from __future__ import annotations

import itertools
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.history import ACTIVITY, TRANSACTIONS, HistoryResult, fetch_history
from ledger_etl.ledger import schema as s
from ledger_etl.ledger.chart import ChartOfAccounts
from ledger_etl.ledger.db import upgrade
from ledger_etl.ledger.ingest import ingest_history, start_run
from ledger_etl.ledger.store import ledger_digest
from ledger_etl.simulator import SimulatorServer
from tests.conftest import make_test_engine
from tests.integration.ledger_helpers import account_ids, client_for, sync

RANGE_START = datetime(2025, 3, 3, tzinfo=UTC)
RANGE_END = datetime(2025, 3, 7, tzinfo=UTC)
SECONDS = int((RANGE_END - RANGE_START).total_seconds())
_fetched: dict[tuple[str, datetime, datetime], HistoryResult] = {}


@pytest.fixture(scope="module")
def client(shared_sim: SimulatorServer) -> Iterator[CapitalClient]:
    with client_for(shared_sim) as session:
        yield session


def _fetch(
    client: CapitalClient, account: str, endpoint: str, start: datetime, end: datetime
) -> HistoryResult:
    key = (endpoint, start, end)
    if key not in _fetched:
        spec = TRANSACTIONS if endpoint == "transactions" else ACTIVITY
        _fetched[key] = fetch_history(client, account, spec, start, end)
    return _fetched[key]


def _ingest_all(engine: Engine, results: list[HistoryResult]) -> str:
    upgrade(engine)
    run_id = start_run(engine, "test", {})
    for result in results:
        ingest_history(engine, run_id, result, ChartOfAccounts())
    with engine.connect() as conn:
        return ledger_digest(conn)


@pytest.fixture(scope="module")
def reference_digest(
    shared_sim: SimulatorServer, client: CapitalClient, tmp_path_factory: pytest.TempPathFactory
) -> str:
    from ledger_etl.ledger.db import make_engine

    account = account_ids(shared_sim)[0]
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('ref') / 'ref.sqlite'}")
    results = [
        _fetch(client, account, e, RANGE_START, RANGE_END) for e in ("transactions", "activity")
    ]
    assert sum(len(r.rows) for r in results) > 50
    return _ingest_all(engine, results)


pieces = st.lists(st.integers(1, SECONDS - 1), max_size=4, unique=True).map(sorted)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=pieces, repeats=st.lists(st.integers(0, 4), max_size=3), data=st.data())
def test_any_split_order_and_duplication_gives_the_same_ledger(
    backend: str,
    cuts: list[int],
    repeats: list[int],
    data: st.DataObject,
    shared_sim: SimulatorServer,
    client: CapitalClient,
    reference_digest: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    account = account_ids(shared_sim)[0]
    bounds = [RANGE_START, *(RANGE_START + timedelta(seconds=c) for c in cuts), RANGE_END]
    ranges = list(itertools.pairwise(bounds))
    ranges += [ranges[i % len(ranges)] for i in repeats]  # fetch some pieces twice
    results = [
        _fetch(client, account, e, a, b) for a, b in ranges for e in ("transactions", "activity")
    ]
    order = data.draw(st.permutations(range(len(results))))
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    engine = make_test_engine(backend, folder, request)
    assert _ingest_all(engine, [results[i] for i in order]) == reference_digest
    engine.dispose()


def test_two_ingestions_at_once_neither_duplicate_nor_fail(
    shared_sim: SimulatorServer, ledger_engine: Engine
) -> None:
    account = account_ids(shared_sim)[0]
    start, end = datetime(2025, 4, 1, tzinfo=UTC), datetime(2025, 4, 15, tzinfo=UTC)
    upgrade(ledger_engine)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            sync(shared_sim, ledger_engine, start, end, [account])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == []
    with ledger_engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(s.ledger_entries)).scalar_one()
        distinct = conn.execute(
            select(func.count()).select_from(
                select(s.ledger_entries.c.reference).distinct().subquery()
            )
        ).scalar_one()
        digest = ledger_digest(conn)
    assert total == distinct > 0
    sync(shared_sim, ledger_engine, start, end, [account])
    with ledger_engine.connect() as conn:
        assert ledger_digest(conn) == digest
