"""Several logins: the simulator serving two, discovery across them, and a login whose
credentials are refused failing its own partitions while the other login's complete."""

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import httpx
import pytest
from sqlalchemy import Engine

from ledger_etl.defs.history.automation import discover_accounts
from ledger_etl.defs.history.checks import CHECKS
from ledger_etl.defs.history.discovery import list_login_accounts
from ledger_etl.defs.history.partitions import ACCOUNTS, partition_key
from ledger_etl.defs.resources import CapitalApiResource, LedgerResource
from ledger_etl.defs.run_queue import LoginQueuedRunCoordinator, login_of_run, tag_with_login
from ledger_etl.defs.scale import LOGIN_TAG, login_pool, login_slot
from ledger_etl.simulator import Clock, SimulatorConfig, WorldConfig
from ledger_etl.simulator.fleet import FleetServer, busiest_second
from tests.conftest import STREAM_WORLD_START, TEST_NOW, database_url_of
from tests.dagster.conftest import ASSETS

LOGINS = {
    "acme": {"seed": 7, "key": "acme-key-1", "identifier": "ops@acme.example", "pw": "acme-pw-1"},
    "beta": {"seed": 8, "key": "beta-key-2", "identifier": "ops@beta.example", "pw": "beta-pw-2"},
}
WRONG = "not-the-password-9"


def fleet_configs(start: date, rate: int = 10) -> dict[str, SimulatorConfig]:
    return {
        name: SimulatorConfig(
            api_key=spec["key"], identifier=spec["identifier"], password=spec["pw"],
            world=WorldConfig(seed=spec["seed"], start=start), rate_limit_per_second=rate,
        )
        for name, spec in LOGINS.items()
    }  # fmt: skip


def credentials_yaml(fleet: FleetServer, rate: float | None = None) -> str:
    """The credentials file of the fleet's logins: every secret an environment reference."""
    lines = ["logins:"]
    for name, spec in LOGINS.items():
        upper = name.upper()
        lines += [
            f"  - name: {name}",
            f"    api_url: {fleet.login_url(name)}",
            f"    api_key: ${{{upper}_API_KEY}}",
            f"    identifier: {spec['identifier']}",
            f"    password: ${{{upper}_PASSWORD}}",
        ]
        if rate is not None:
            lines.append(f"    rate_limit: {rate}")
    return "\n".join(lines) + "\n"


def credentials_env(wrong: str | None = None) -> dict[str, str]:
    """The variables the file refers to; `wrong` names a login given a wrong password."""
    env = {}
    for name, spec in LOGINS.items():
        env[f"{name.upper()}_API_KEY"] = spec["key"]
        env[f"{name.upper()}_PASSWORD"] = WRONG if name == wrong else spec["pw"]
    return env


def fleet_accounts(fleet: FleetServer, login: str) -> list[str]:
    answer = httpx.get(f"{fleet.login_url(login)}/_sim/accounts", timeout=30).json()
    return [a["accountId"] for a in answer["accounts"]]


@pytest.fixture(scope="module")
def fleet() -> Iterator[FleetServer]:
    server = FleetServer(fleet_configs(date(2025, 11, 1), rate=0), clock=Clock(TEST_NOW))
    yield server.start()
    server.stop()


@pytest.fixture(scope="module")
def young_fleet() -> Iterator[FleetServer]:
    """Accounts opened two weeks before "now": a first login has little history to compute."""
    server = FleetServer(fleet_configs(STREAM_WORLD_START, rate=0), clock=Clock(TEST_NOW))
    yield server.start()
    server.stop()


def capital_of(
    fleet: FleetServer, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> CapitalApiResource:
    """The fleet's logins from a credentials file; beta's password is wrong (refused)."""
    path = folder / "logins.yaml"
    path.write_text(credentials_yaml(fleet, rate=200), encoding="utf-8")
    for name, value in credentials_env(wrong="beta").items():
        monkeypatch.setenv(name, value)
    return CapitalApiResource(credentials_file=str(path))


def test_each_login_has_its_own_credentials_accounts_and_counts(young_fleet: FleetServer) -> None:
    fleet = young_fleet
    acme, beta = fleet_accounts(fleet, "acme"), fleet_accounts(fleet, "beta")
    assert len(acme) == len(beta) == 2 and not set(acme) & set(beta)
    body = {"identifier": LOGINS["acme"]["identifier"], "password": LOGINS["acme"]["pw"]}
    url = fleet.login_url("acme") + "/api/v1/session"
    assert httpx.post(url, json=body, headers={"X-CAP-API-KEY": "acme-key-1"}).status_code == 200
    # acme's key and password on beta's URL: refused there.
    other = fleet.login_url("beta") + "/api/v1/session"
    assert httpx.post(other, json=body, headers={"X-CAP-API-KEY": "acme-key-1"}).status_code in (
        400,
        401,
    )
    counts = httpx.get(fleet.url + "/_sim/requests").json()["logins"]
    assert counts["acme"]["requests"] >= 1 and counts["beta"]["requests"] >= 1
    assert httpx.get(fleet.url + "/nobody/api/v1/session").status_code == 404


def test_busiest_second_is_a_sliding_window() -> None:
    assert busiest_second([0.9, 0.95, 1.05, 1.1, 2.5]) == 4
    assert busiest_second([0.0, 1.0, 2.0]) == 1
    assert busiest_second([]) == 0


def test_discovery_lists_every_login_and_reports_the_one_refused(
    young_fleet: FleetServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet, capital = young_fleet, capital_of(young_fleet, tmp_path, monkeypatch)
    found = list_login_accounts(capital)
    assert found.keys == sorted(f"acme/{a}" for a in fleet_accounts(fleet, "acme"))
    assert list(found.failures) == ["beta"]
    assert WRONG not in found.failures["beta"] and "beta-key-2" not in found.failures["beta"]
    with dg.instance_for_test() as instance:
        keys, new = discover_accounts(capital, instance)
        assert keys == new == found.keys
        assert sorted(instance.get_dynamic_partitions(ACCOUNTS.name)) == found.keys


@pytest.mark.slow
def test_a_refused_login_fails_its_own_partitions_only(
    fleet: FleetServer, ledger_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    capital = capital_of(fleet, tmp_path, monkeypatch)
    from tests.integration.ledger_helpers import ledger_amounts

    acme = f"acme/{fleet_accounts(fleet, 'acme')[0]}"
    beta = f"beta/{fleet_accounts(fleet, 'beta')[0]}"
    resources = {
        "capital": capital,
        "ledger": LedgerResource(
            database_url=database_url_of(ledger_engine), export_dir=str(tmp_path / "exports")
        ),
    }
    results = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, [acme, beta])
        for key in (acme, beta):
            results[key] = dg.materialize(
                [*ASSETS, *CHECKS],
                instance=instance,
                resources=resources,
                partition_key=partition_key("2025-11", key),
                raise_on_error=False,
            )
    assert results[acme].success
    events = results[acme].get_asset_materialization_events()
    statement = next(e for e in events if e.asset_key.to_user_string() == "monthly_statement")
    metadata = {k: v.value for k, v in statement.materialization.metadata.items()}
    assert (metadata["status"], metadata["reconciliation"]) == ("FINAL", "RECONCILED")

    assert not results[beta].success
    failures = [
        e.event_specific_data.error.message  # type: ignore[union-attr]
        for e in results[beta].all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE
    ]
    assert failures and all("login 'beta'" in m for m in failures), failures
    assert all(WRONG not in m and "beta-key-2" not in m for m in failures)
    start, end = datetime(2025, 11, 1, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC)
    assert ledger_amounts(ledger_engine, beta.split("/")[1], start, end) == {}
    assert ledger_amounts(ledger_engine, acme.split("/")[1], start, end)


def test_login_of_a_run_from_its_partition_tags() -> None:
    assert login_of_run({"dagster/partition/account": "acme/123"}) == "acme"
    assert login_of_run({"dagster/partition": "beta/9|2025-10"}) == "beta"
    assert login_of_run({"dagster/partition": "123|2025-10"}) is None  # the single login
    same = {"dagster/asset_partition_range_start": "acme/1|2025-01",
            "dagster/asset_partition_range_end": "acme/2|2025-03"}  # fmt: skip
    assert login_of_run(same) == "acme"
    assert login_of_run({**same, "dagster/asset_partition_range_end": "beta/2|2025-03"}) is None
    assert login_of_run({}) is None


def test_the_run_queue_tags_a_run_with_its_login() -> None:
    from dagster._core.test_utils import create_run_for_test

    queue = {"module": "ledger_etl.defs.run_queue", "class": "LoginQueuedRunCoordinator"}
    with dg.instance_for_test(overrides={"run_coordinator": queue}) as instance:
        assert isinstance(instance.run_coordinator, LoginQueuedRunCoordinator)
        ui_backfill = create_run_for_test(
            instance, job_name="__ASSET_JOB", tags={"dagster/partition": "beta/9|2025-10"}
        )
        mislabelled = create_run_for_test(
            instance,
            job_name="close_month",
            tags={"dagster/partition/account": "acme/1", LOGIN_TAG: "default"},
        )
        single = create_run_for_test(instance, job_name="close_month", tags={"a": "b"})
        # what the coordinator does before Dagster's queue takes the run
        for run in (ui_backfill, mislabelled, single):
            tag_with_login(instance, run)
        tags = {r.run_id: r.tags.get(LOGIN_TAG) for r in instance.get_runs()}
        assert tags == {ui_backfill.run_id: "beta", mislabelled.run_id: "acme", single.run_id: None}


class _StepContext:
    """What `login_slot` reads of a step's context: the instance, the run id and the step key."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, step: str) -> None:
        import logging
        from types import SimpleNamespace

        self.instance = instance
        self.run = SimpleNamespace(run_id=run_id)
        self.log = logging.getLogger("test_logins")
        context = SimpleNamespace(step=SimpleNamespace(key=step))
        self.op_execution_context = SimpleNamespace(get_step_execution_context=lambda: context)


@pytest.mark.slow
def test_a_login_pool_admits_one_step_at_a_time_and_logins_side_by_side() -> None:
    import threading
    import time

    pools = {"concurrency": {"pools": {"default_limit": 1}}}
    spans: dict[str, tuple[float, float]] = {}

    def step(instance: dg.DagsterInstance, name: str, login: str) -> None:
        with login_slot(_StepContext(instance, f"run-{name}", "raw_transactions"), login):  # type: ignore[arg-type]
            began = time.monotonic()
            time.sleep(0.6)
            spans[name] = (began, time.monotonic())

    with dg.instance_for_test(overrides=pools) as instance:
        assert instance.event_log_storage.supports_global_concurrency_limits
        threads = [
            threading.Thread(target=step, args=(instance, name, login))
            for name, login in (("a1", "acme"), ("a2", "acme"), ("b1", "beta"))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        first, second = sorted([spans["a1"], spans["a2"]])
        # acme's second step starts only after the first ended and its last second passed
        assert second[0] >= first[1] + 1.0
        # beta's step ran while acme's first held acme's slot
        assert spans["b1"][0] < first[1] and first[0] < spans["b1"][1]
        assert {login_pool("acme"), login_pool("beta")} <= set(
            instance.event_log_storage.get_concurrency_keys()
        )
