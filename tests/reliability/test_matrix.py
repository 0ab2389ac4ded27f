"""The fault matrix, end to end: the CLI and Dagster runs against a faulty simulator, on SQLite
and PostgreSQL. Every case ends with the ledger compared to the simulator's ground truth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import Engine, text

from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.ledger.db import make_engine
from ledger_etl.monthly import month_bounds
from ledger_etl.simulator import SimulatorServer
from ledger_etl.statements import publish_statement
from tests.conftest import database_url_of, make_server, make_test_engine
from tests.integration.ledger_helpers import (
    account_ids,
    client_for,
    ledger_amounts,
    truth,
    truth_amounts,
)
from tests.reliability.dagster_run import materialize_partition
from tests.reliability.harness import (
    ROOT,
    Measure,
    activity_count,
    assert_ledger_equals_truth,
    assert_statement_equals_ledger,
    cli_env,
    run_cli,
    run_totals,
    snapshot,
    statement_folders,
    sync_args,
    sync_counters,
)
from tests.reliability.matrix import params

START, END = datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 5, 4, tzinfo=UTC)
MAY = "2025-05"
HISTORY = "^/history/"

API_FAULTS: dict[str, dict[str, Any]] = {
    "http_429_storm": {"rate_limit_per_second": 10, "faults": {
        "rules": [{"kind": "throttle", "path": HISTORY, "nth": list(range(3, 15))}]}},
    "http_5xx_every_k": {"faults": {
        "rules": [{"kind": "status", "status": 503, "path": HISTORY, "every": 4}]}},
    "http_drop_every_k": {"faults": {"rules": [{"kind": "drop", "path": HISTORY, "every": 5}]}},
    "session_expiry_every_n": {"faults": {
        "rules": [{"kind": "expire_session", "path": HISTORY, "every": 10}]}},
    "html_and_truncated_json_200": {"faults": {"rules": [
        {"kind": "html", "path": HISTORY, "every": 4},
        {"kind": "truncated_json", "path": HISTORY, "every": 5}]}},
}  # fmt: skip


def _server(request: pytest.FixtureRequest, **overrides: Any) -> SimulatorServer:
    server = make_server(**{"rate_limit_per_second": 0, **overrides})
    request.addfinalizer(server.stop)
    return server


def _publish_and_check(
    engine: Engine, env: dict[str, str], exports: Path, accounts: list[str], month: str
) -> int:
    """`ledger-etl statement` for the month; each account's newest version equals the ledger."""
    done = run_cli(["statement", "--month", month], env)
    assert done.returncode == 0, done.stderr
    start, end = month_bounds(month)
    for account in accounts:
        assert_statement_equals_ledger(
            engine, statement_folders(exports, account, month)[-1], account, start, end
        )
    return len(accounts)


# -- the API misbehaves -------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "backend"), params(*API_FAULTS))
def test_api_faults_through_the_cli(
    case: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = _server(request, **API_FAULTS[case])
    engine = make_test_engine(backend, tmp_path, request)
    exports = tmp_path / "exports"
    env = cli_env(server, database_url_of(engine), exports)
    accounts = account_ids(server)
    done = run_cli(sync_args(START, END), env)
    reruns = 0
    if case == "http_429_storm" and done.returncode == 1:
        # A storm longer than the retry budget leaves gaps: listed by `gaps`, filled by a re-run.
        gaps = run_cli(["gaps", "--from", f"{START:%Y-%m-%d}", "--to", f"{END:%Y-%m-%d}"], env)
        assert gaps.returncode == 1 and "transactions" in gaps.stdout, gaps.stdout
        done, reruns = run_cli(sync_args(START, END), env), 1
    assert done.returncode == 0, done.stdout + done.stderr
    compared = assert_ledger_equals_truth(server, engine, accounts, START, END)
    statements = _publish_and_check(engine, env, exports, accounts, MAY)
    totals = run_totals(engine)
    stats = Measure(case, backend, server)
    stats.done(rows_compared=compared, statements=statements, reruns=reruns,
               retries=totals["retries"], relogins=totals["relogins"],
               splits=totals["split_windows"])  # fmt: skip
    if case == "session_expiry_every_n":
        assert totals["relogins"] > 0
    assert totals["retries"] > 0 or totals["relogins"] > 0


IN_PROCESS: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    # The CLI's read timeout is 30 s; the same sync with a 1 s timeout keeps the case short.
    "http_hung_past_timeout": (
        {"rules": [{"kind": "latency", "seconds": 3.0, "path": HISTORY, "nth": [2, 5, 8]}]},
        {"read_timeout": 1.0}, {}),
    # No row cap is documented: the client treats `split_threshold` rows as possibly cut short.
    # A server cap at that threshold must cost nothing; one below it cannot be detected.
    "truncated_windows": ({"truncate_above": 6}, {}, {"split_threshold": 6}),
}  # fmt: skip


@pytest.mark.parametrize(("case", "backend"), params(*IN_PROCESS))
def test_api_faults_through_sync_range(
    case: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from ledger_etl.sync import sync_range

    faults, client_options, sync_options = IN_PROCESS[case]
    server = _server(request, faults=faults)
    engine = make_test_engine(backend, tmp_path, request)
    accounts = account_ids(server)
    with client_for(server, **client_options) as client:
        report = sync_range(client, engine, START, END, **sync_options)
    assert report.ok
    compared = assert_ledger_equals_truth(server, engine, accounts, START, END)
    start, end = month_bounds(MAY)
    for account in accounts:
        folder = publish_statement(engine, account, MAY, tmp_path / "exports").folder
        assert_statement_equals_ledger(engine, folder, account, start, end)
    totals = run_totals(engine)
    if case == "truncated_windows":
        assert totals["split_windows"] > 0
    else:
        assert totals["retries"] >= 3
    Measure(case, backend, server).done(rows_compared=compared, retries=totals["retries"],
                                        relogins=totals["relogins"],
                                        splits=totals["split_windows"])  # fmt: skip


@pytest.mark.parametrize(("case", "backend"), params("late_arriving_rows"))
def test_late_rows_arrive_in_the_next_sync(
    case: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    late = [
        {"endpoint": e, "seconds": 12 * 3600, "fraction": 1.0} for e in ("transactions", "activity")
    ]
    server = _server(request, faults={"late_arrival": late})
    engine = make_test_engine(backend, tmp_path, request)
    env = cli_env(server, database_url_of(engine), tmp_path / "exports")
    accounts = account_ids(server)
    now = server.simulator.clock.now().replace(microsecond=0)
    start, end = (now - timedelta(days=1)).replace(hour=0, minute=0, second=0), now
    args = sync_args(start, now + timedelta(days=1))
    first = run_cli(args, env)
    assert first.returncode == 0, first.stdout + first.stderr
    held_back = 0
    for account in accounts:
        stored, expected = (
            ledger_amounts(engine, account, start, end),
            truth_amounts(server, account, start, end),
        )
        assert stored.items() <= expected.items()
        held_back += len(expected) - len(stored)
        activities = len(truth(server, "activity", account, start, end))
        assert activity_count(engine, account, start, end) <= activities
        held_back += activities - activity_count(engine, account, start, end)
    assert held_back > 0, "the profile held nothing back: the case proves nothing"
    server.simulator.clock.advance(13 * 3600)
    second = run_cli(args, env)
    assert second.returncode == 0, second.stdout + second.stderr
    compared = assert_ledger_equals_truth(server, engine, accounts, start, end)
    Measure(case, backend, server).done(rows_compared=compared, late_rows_caught_up=held_back)


@pytest.mark.parametrize(("case", "backend"), params("dagster_transient_faults"))
def test_dagster_run_through_transient_faults(
    case: str,
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = _server(request, start=date(2025, 12, 25), faults={
        "seed": 3, "rules": [
            {"kind": "throttle", "probability": 0.05}, {"kind": "status", "status": 503,
            "path": HISTORY, "every": 11}, {"kind": "drop", "path": HISTORY, "every": 13},
            {"kind": "expire_session", "every": 40}]})  # fmt: skip
    engine = make_test_engine(backend, tmp_path, request)
    exports = tmp_path / "exports"
    for name, value in cli_env(server, database_url_of(engine), exports).items():
        monkeypatch.setenv(name, value)
    account = account_ids(server)[1]
    with dg.instance_for_test() as instance:
        outcome = materialize_partition(instance, "2025-12", account)
    with engine.connect() as conn:
        failed = conn.execute(text("SELECT endpoint, window_start, attempts, error FROM fetch_log "
                                   "WHERE outcome = 'failed'")).all()  # fmt: skip
    assert outcome["success"] and all(outcome["checks"].values()), (outcome["checks"], failed)
    statement = outcome["assets"]["monthly_statement"]
    assert (statement["status"], statement["reconciliation"]) == ("FINAL", "RECONCILED")
    start, end = month_bounds("2025-12")
    compared = assert_ledger_equals_truth(server, engine, [account], start, end)
    assert_statement_equals_ledger(engine, Path(statement["folder"]), account, start, end)
    raw = [outcome["assets"][k] for k in ("raw_transactions", "raw_activity")]
    Measure(case, backend, server).done(
        rows_compared=compared,
        retries=sum(m["retries"] for m in raw),
        relogins=sum(m["relogins"] for m in raw),
        splits=sum(m["splits"] for m in raw),
    )


# -- processes die ------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "backend"), params("sigkill_sync"))
def test_sigkilled_syncs_then_a_rerun(
    case: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = _server(request)
    engine = make_test_engine(backend, tmp_path, request)
    env = cli_env(server, database_url_of(engine))
    accounts = account_ids(server)
    args = sync_args(START, END)
    # Each kill lands on the state the previous one left behind.
    for point in ("after_fetch:1", "mid_upsert:2", "before_commit:3"):
        killed = run_cli(args, {**env, "LEDGER_ETL_KILL_AT": point})
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr)
    rerun = run_cli(args, env)
    assert rerun.returncode == 0, rerun.stderr
    compared = assert_ledger_equals_truth(server, engine, accounts, START, END)
    Measure(case, backend, server).done(rows_compared=compared, kills=3,
                                        retries=sync_counters(rerun.stdout)["retries"])  # fmt: skip


def _dagster_process(
    env: dict[str, str], month: str, account: str, *tags: str
) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "tests.reliability.dagster_run", "--month", month]
    args += ["--account", account, *(f"--tag={t}" for t in tags)]
    return subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _outcome(process: subprocess.Popen[str]) -> tuple[int, dict[str, Any]]:
    out, err = process.communicate(timeout=300)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines or process.returncode != 0, err[-3000:]
    outcome = json.loads(lines[-1]) if lines else {}
    if process.returncode != 0 or not all(outcome.get("checks", {}).values()):
        outcome["stderr"] = err[-3000:]  # what a failing assertion shows, to tell why
    return process.returncode, outcome


def _dagster_world(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path
) -> tuple[SimulatorServer, Engine, Path, dict[str, str], str]:
    server = _server(request, start=date(2025, 12, 25))
    engine = make_test_engine(backend, tmp_path, request)
    exports = tmp_path / "exports"
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = cli_env(server, database_url_of(engine), exports, DAGSTER_HOME=str(home))
    account = account_ids(server)[1]
    # The instance exists before any run, as in a deployment (the discovery sensor registers
    # the accounts); two processes creating its storage at the same moment would race.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, [account])
    return server, engine, exports, env, account


def _check_dagster_outcome(
    server: SimulatorServer, engine: Engine, exports: Path, account: str
) -> int:
    start, end = month_bounds("2025-12")
    compared = assert_ledger_equals_truth(server, engine, [account], start, end)
    folders = statement_folders(exports, account, "2025-12")
    assert [f.name for f in folders] == ["v1"]
    assert_statement_equals_ledger(engine, folders[0], account, start, end)
    return compared


@pytest.mark.parametrize(("case", "backend"), params("sigkill_dagster_run"))
def test_sigkilled_dagster_runs_then_a_rerun(
    case: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server, engine, exports, env, account = _dagster_world(request, backend, tmp_path)
    for point in ("after_fetch:2", "mid_upsert:1", "before_commit:2"):
        code, _ = _outcome(
            _dagster_process({**env, "LEDGER_ETL_KILL_AT": point}, "2025-12", account)
        )
        assert code == -signal.SIGKILL, point
    code, outcome = _outcome(_dagster_process(env, "2025-12", account))
    assert code == 0 and all(outcome["checks"].values()), outcome
    compared = _check_dagster_outcome(server, engine, exports, account)
    Measure(case, backend, server).done(rows_compared=compared, kills=3)


@pytest.mark.parametrize(("case", "backend"), params("pg_terminate_backend"))
def test_connection_terminated_mid_transaction_then_a_rerun(
    case: str,
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ledger_etl.ledger.ingest as ingest
    from ledger_etl.sync import sync_range

    server = _server(request)
    base = make_test_engine(backend, tmp_path, request)
    app = f"reliability_{os.getpid()}_{id(base)}"
    engine = make_engine(f"{database_url_of(base)}&application_name={app}")
    request.addfinalizer(engine.dispose)
    admin = make_engine(request.getfixturevalue("postgres_url"))
    request.addfinalizer(admin.dispose)
    accounts = account_ids(server)
    terminated: list[int] = []
    real_checkpoint = ingest.checkpoint

    def terminate_open_transaction(name: str) -> None:
        real_checkpoint(name)
        if name != "mid_upsert" or terminated:
            return
        with admin.begin() as conn:
            pids = conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :app "
                "AND backend_xid IS NOT NULL"), {"app": app}).scalars().all()  # fmt: skip
            for pid in pids:
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        terminated.extend(pids)

    monkeypatch.setattr(ingest, "checkpoint", terminate_open_transaction)
    with client_for(server) as client, pytest.raises(Exception) as raised:
        sync_range(client, engine, START, END)
    assert len(terminated) == 1, terminated
    monkeypatch.setattr(ingest, "checkpoint", real_checkpoint)
    for account in accounts:  # nothing of the killed transaction is visible
        assert (
            ledger_amounts(engine, account).items()
            <= truth_amounts(server, account, START, END + timedelta(days=1)).items()
        )
    with client_for(server) as client:
        assert sync_range(client, engine, START, END).ok
    compared = assert_ledger_equals_truth(server, engine, accounts, START, END)
    Measure(case, backend, server).done(rows_compared=compared, terminated=len(terminated),
                                        error=type(raised.value).__name__)  # fmt: skip


# -- concurrency --------------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "backend"), params("schedule_and_backfill_together"))
def test_scheduled_run_and_backfill_of_one_partition_at_once(
    case: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server, engine, exports, env, account = _dagster_world(request, backend, tmp_path)
    scheduled = _dagster_process(env, "2025-12", account, "source=schedule")
    backfill = _dagster_process(env, "2025-12", account, "source=backfill")
    outcomes = [_outcome(scheduled), _outcome(backfill)]
    for code, outcome in outcomes:
        assert code == 0 and all(outcome["checks"].values()), outcome
    published = sorted(o["assets"]["monthly_statement"]["publish"] for _, o in outcomes)
    assert published == ["unchanged", "written"]
    compared = _check_dagster_outcome(server, engine, exports, account)
    Measure(case, backend, server).done(rows_compared=compared, runs=2)


# -- statements change --------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "backend"), params("statement_republished"))
def test_a_stored_statement_published_again_writes_nothing(
    case: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = _server(request)
    engine = make_test_engine(backend, tmp_path, request)
    exports = tmp_path / "exports"
    env = cli_env(server, database_url_of(engine), exports)
    accounts = account_ids(server)
    assert run_cli(sync_args(START, END), env).returncode == 0
    compared = assert_ledger_equals_truth(server, engine, accounts, START, END)
    _publish_and_check(engine, env, exports, accounts, MAY)
    before = {a: snapshot(statement_folders(exports, a, MAY)[0]) for a in accounts}
    again = run_cli(["statement", "--month", MAY], env)
    assert again.returncode == 0 and again.stdout.count("unchanged: ") == len(accounts)
    for account in accounts:
        folders = statement_folders(exports, account, MAY)
        assert [f.name for f in folders] == ["v1"]
        assert snapshot(folders[0]) == before[account]
    Measure(case, backend, server).done(rows_compared=compared, statements=len(accounts))


@pytest.mark.parametrize(("case", "backend"), params("late_row_restates_closed_month"))
def test_a_late_row_restates_a_closed_month(
    case: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    late = [{"endpoint": "transactions", "seconds": 20 * 86400, "fraction": 0.2}]
    server = _server(request, start=date(2025, 12, 20), faults={"late_arrival": late})
    engine = make_test_engine(backend, tmp_path, request)
    exports = tmp_path / "exports"
    env = cli_env(server, database_url_of(engine), exports)
    account = account_ids(server)[0]
    start, end = month_bounds("2025-12")
    args = sync_args(start, end, [account])
    assert run_cli(args, env).returncode == 0
    first = run_cli(["statement", "--month", "2025-12", "--account", account], env)
    assert first.returncode == 0, first.stderr
    v1 = statement_folders(exports, account, "2025-12")[0]
    original = snapshot(v1)
    hidden = (
        truth_amounts(server, account, start, end).keys()
        - ledger_amounts(engine, account, start, end).keys()
    )
    assert hidden, "nothing was late: the case proves nothing"
    server.simulator.clock.advance(20 * 86400)
    assert run_cli(args, env).returncode == 0
    compared = assert_ledger_equals_truth(server, engine, [account], start, end)
    second = run_cli(["statement", "--month", "2025-12", "--account", account], env)
    assert second.returncode == 0, second.stderr
    folders = statement_folders(exports, account, "2025-12")
    assert [f.name for f in folders] == ["v1", "v2"]
    assert snapshot(v1) == original
    manifest = assert_statement_equals_ledger(engine, folders[1], account, start, end)
    added = set(manifest["diff"]["added"])
    assert added == hidden, manifest["diff"]
    assert manifest["diff"]["previous_version"] == 1
    Measure(case, backend, server).done(rows_compared=compared, late_rows=len(hidden), versions=2)
