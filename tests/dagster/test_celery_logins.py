"""Several logins on two Celery workers, the Dagster instance on PostgreSQL, RabbitMQ between
them: a credentials file of three logins served by one simulator fleet. Two logins (two accounts
each) back-fill three months; the third login's password is wrong.

Asserted: every statement of the two good logins is FINAL and reconciled and their ledgers equal
the simulator's ground truth; both workers ran steps (the event log names the Celery worker of
each step); neither login's simulator saw more requests in any one clock second than its rate limit
(each login's API steps hold that login's pool slot, whichever worker runs them); and the third
login's partition fails with a message naming the login, without any secret."""

import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import httpx
import pytest

from ledger_etl.defs.history.automation import discover_accounts
from ledger_etl.defs.history.partitions import ACCOUNTS
from ledger_etl.defs.resources import CapitalApiResource
from ledger_etl.defs.scale import LOGIN_TAG
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.logins import split_account_key
from ledger_etl.simulator import Clock, SimulatorConfig, WorldConfig
from ledger_etl.simulator.fleet import FleetServer
from ledger_etl.statements.published import PublishedStatements
from tests.conftest import TEST_NOW
from tests.dagster.test_celery_workers import BIN, BROKER, ROOT, _dagster_url, databases
from tests.integration.ledger_helpers import ledger_amounts, truth_amounts

__all__ = ["databases"]  # the module-scoped PostgreSQL databases fixture, shared

MONTHS = ["2025-10", "2025-11", "2025-12"]
RATE = 10  # each login's limit on the simulator, requests per second (Capital.com's)
LOGINS = {
    "acme": {"seed": 7, "key": "acme-key-1", "identifier": "ops@acme.example", "pw": "acme-pw-1"},
    "beta": {"seed": 8, "key": "beta-key-2", "identifier": "ops@beta.example", "pw": "beta-pw-2"},
    "gamma": {"seed": 9, "key": "gamma-key-3", "identifier": "ops@gamma.example", "pw": "gamma-pw"},
}
GOOD = ("acme", "beta")
WRONG = "wrong-password-for-gamma"


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetServer]:
    configs = {
        name: SimulatorConfig(
            api_key=spec["key"], identifier=spec["identifier"], password=spec["pw"],
            world=WorldConfig(seed=spec["seed"], start=date(2025, 10, 1)),
            rate_limit_per_second=RATE,
        )
        for name, spec in LOGINS.items()
    }  # fmt: skip
    server = FleetServer(configs, clock=Clock(TEST_NOW)).start()
    yield server
    server.stop()


def _accounts(fleet: FleetServer, login: str) -> list[str]:
    answer = httpx.get(f"{fleet.login_url(login)}/_sim/accounts", timeout=60).json()
    return [a["accountId"] for a in answer["accounts"]]


def _credentials(fleet: FleetServer, folder: Path) -> tuple[Path, dict[str, str]]:
    """The credentials file (references only) and the variables it refers to."""
    lines, env = ["logins:"], {}
    for name, spec in LOGINS.items():
        upper = name.upper()
        lines += [
            f"  - name: {name}",
            f"    api_url: {fleet.login_url(name)}",
            f"    api_key: ${{{upper}_API_KEY}}",
            f"    identifier: {spec['identifier']}",
            f"    password: ${{{upper}_PASSWORD}}",
        ]
        env[f"{upper}_API_KEY"] = spec["key"]
        env[f"{upper}_PASSWORD"] = WRONG if name == "gamma" else spec["pw"]
    path = folder / "logins.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, env


@pytest.fixture(scope="module")
def deployment(
    databases: dict[str, str], fleet: FleetServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    """The PostgreSQL profile, the accounts discovered, and two workers (scripts/workers.sh)."""
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(ROOT / "dagster_home" / "postgres" / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path_factory.mktemp("data")
    credentials, secrets = _credentials(fleet, data)
    queue = f"q{uuid.uuid4().hex[:8]}"  # our own queue: no other deployment takes our steps
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPITAL_", "LEDGER_"))}
    env.update(
        DAGSTER_HOME=str(home),
        DAGSTER_POSTGRES_URL=_dagster_url(databases["dagster"]),
        LEDGER_EXECUTOR="celery",
        LEDGER_CELERY_BROKER=BROKER,
        LEDGER_CELERY_QUEUE=queue,
        LEDGER_CREDENTIALS_FILE=str(credentials),
        LEDGER_DATABASE_URL=databases["ledger"],
        LEDGER_EXPORT_DIR=str(data / "exports"),
        VENV=str(BIN.parent),
        N="2",
        WORKER_PREFIX=queue,
        **secrets,
    )
    upgrade(make_engine(databases["ledger"]))
    saved = {k: os.environ.get(k) for k in [*secrets, "DAGSTER_POSTGRES_URL"]}
    os.environ.update(secrets, DAGSTER_POSTGRES_URL=env["DAGSTER_POSTGRES_URL"])
    with dg.DagsterInstance.from_config(str(home)) as instance:
        keys, _ = discover_accounts(CapitalApiResource(credentials_file=str(credentials)), instance)
        # gamma's accounts were registered before its password changed (discovery skips it now)
        instance.add_dynamic_partitions(
            ACCOUNTS.name, [f"gamma/{a}" for a in _accounts(fleet, "gamma")]
        )
    log = (data / "workers.log").open("w")
    workers = subprocess.Popen(
        ["bash", "scripts/workers.sh"],  # what `make workers N=2` runs
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        yield {"env": env, "home": home, "data": data, "log": data / "workers.log", "keys": keys}
    finally:
        os.killpg(workers.pid, signal.SIGTERM)
        try:
            workers.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(workers.pid, signal.SIGKILL)
        log.close()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _materialize(deployment: dict, account: str, month: str) -> subprocess.CompletedProcess:
    """One partition of `close_month`, tagged with its login, its steps run by the workers."""
    login, _ = split_account_key(account)
    tags = json.dumps({"dagster/partition": f"{account}|{month}", LOGIN_TAG: login})
    return subprocess.run(
        [str(BIN / "dagster"), "job", "execute", "-m", "ledger_etl.definitions",
         "-a", "defs", "-j", "close_month", "--tags", tags],
        cwd=ROOT, env=deployment["env"], capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def _crowded(count: dict) -> dict[str, int]:
    """The clock seconds with the most requests, for the failure message."""
    per_second = count["per_second"]
    return dict(sorted(per_second.items(), key=lambda kv: -kv[1])[:5])


def _step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    workers = {}
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        metadata = event.engine_event_data.metadata if event else {}
        if "Celery worker" in metadata:
            workers[f"{run_id}:{event.step_key}"] = metadata["Celery worker"].value
    return workers


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_logins_backfill_on_two_celery_workers(fleet: FleetServer, deployment: dict) -> None:
    keys = deployment["keys"]
    assert sorted({split_account_key(k)[0] for k in keys}) == list(GOOD)
    assert len(keys) == 4
    gamma = f"gamma/{_accounts(fleet, 'gamma')[0]}"

    # Months of one account in order (a statement opens with the previous month's close); the
    # accounts (and so both logins) side by side, so the workers have steps to share.
    def account_runs(account: str) -> list[subprocess.CompletedProcess]:
        months = MONTHS if account != gamma else MONTHS[:1]
        return [_materialize(deployment, account, m) for m in months]

    with ThreadPoolExecutor(len(keys) + 1) as pool:
        outcomes = dict(zip([*keys, gamma], pool.map(account_runs, [*keys, gamma]), strict=True))
    for account in keys:
        for result in outcomes[account]:
            assert result.returncode == 0, (result.stdout + result.stderr)[-3000:] + deployment[
                "log"
            ].read_text()[-3000:]
    assert outcomes[gamma][0].returncode != 0

    published = PublishedStatements(deployment["data"] / "exports")
    engine = make_engine(deployment["env"]["LEDGER_DATABASE_URL"])
    start, end = datetime(2025, 10, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    for key in keys:
        login, account = split_account_key(key)
        for month in MONTHS:
            document = published.document(account, month)
            assert document["status"] == "FINAL", (key, month, document["status_reasons"])
            assert document["reconciliation"]["status"] == "RECONCILED", (key, month)
        truth = truth_amounts(SimpleNamespace(url=fleet.login_url(login)), account, start, end)  # type: ignore[arg-type]
        assert ledger_amounts(engine, account, start, end) == truth, key

    # Neither login's simulator saw more than its limit in any clock second. (The busiest
    # sliding one-second window can exceed it by a request or two when arrivals bunch on a
    # starved machine; the simulator answers those with 429, the client waits and retries, and
    # the ledgers above equal the truth all the same.)
    counts = httpx.get(fleet.url + "/_sim/requests", timeout=30).json()["logins"]
    for login in GOOD:
        assert counts[login]["requests"] > 100, counts[login]["requests"]
        busiest = {k: v for k, v in counts[login].items() if k != "per_second"}
        assert max(counts[login]["per_second"].values()) <= RATE, (
            login,
            busiest,
            _crowded(counts[login]),
        )

    workers: dict[str, str] = {}
    with dg.DagsterInstance.from_config(str(deployment["home"])) as instance:
        runs = instance.get_runs()
        assert len(runs) == len(keys) * len(MONTHS) + 1
        for run in runs:
            login = run.tags[LOGIN_TAG]
            if login == "gamma":
                assert run.status == dg.DagsterRunStatus.FAILURE
                failures = [
                    e.dagster_event.step_failure_data.error.message  # type: ignore[union-attr]
                    for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
                ]
                assert failures and all("login 'gamma'" in m and "401" in m for m in failures)
                assert not any(WRONG in m or "gamma-key-3" in m for m in failures)
                continue
            assert run.status == dg.DagsterRunStatus.SUCCESS, run.run_id
            assert login in GOOD and run.tags["dagster/partition"].startswith(f"{login}/")
            workers.update(_step_workers(instance, run.run_id))
    names = {name.split("@")[0] for name in workers.values()}
    prefix = deployment["env"]["WORKER_PREFIX"]
    assert names == {f"{prefix}-1", f"{prefix}-2"}, workers
    # Nothing of gamma reached the ledger.
    assert ledger_amounts(engine, split_account_key(gamma)[1]) == {}
