"""Resources as the Dagster UI shows them: environment variables by name (values never shown),
real defaults otherwise; and runs that resolve them."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster_shared.serdes import serialize_value

from ledger_etl.definitions import build_definitions
from ledger_etl.defs.history.assets import raw_transactions
from ledger_etl.defs.history.partitions import ACCOUNTS, partition_key
from ledger_etl.defs.resources import (
    CAPITAL_VARIABLES,
    LEDGER_VARIABLES,
    resources_from_environment,
)
from ledger_etl.settings import project_root
from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD
from tests.integration.ledger_helpers import account_ids

VARIABLES = [*CAPITAL_VARIABLES.values(), *LEDGER_VARIABLES.values()]


def _shown(resources: dict) -> tuple[dict[str, dict[str, object]], str]:
    """What the UI gets: each resource's configured values, and the whole snapshot as text."""
    snap = RepositorySnap.from_def(build_definitions(resources).get_repository_def())
    shown = {r.name: dict(r.configured_values) for r in snap.resources}
    return shown, serialize_value(snap)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unset_variables_show_the_real_defaults(clean_env: pytest.MonkeyPatch) -> None:
    shown, _ = _shown(resources_from_environment())
    assert shown["capital"]["api_url"] == '""'  # the bundled simulator
    assert shown["capital"]["rate_limit"] == '"10"'
    assert shown["capital"]["split_threshold"] == '"1000"'
    database = f"sqlite:///{project_root() / 'var' / 'ledger.sqlite'}"
    assert shown["ledger"]["database_url"] == f'"{database}"'
    assert shown["ledger"]["export_dir"] == f'"{project_root() / "var" / "exports"}"'


def test_set_variables_show_by_name_and_never_by_value(clean_env: pytest.MonkeyPatch) -> None:
    secrets = {
        "CAPITAL_API_URL": "https://api-capital.example.invalid",
        "CAPITAL_API_KEY": "key-Secret-4242",
        "CAPITAL_IDENTIFIER": "someone@example.com",
        "CAPITAL_PASSWORD": "pw-Secret-4242",
        "LEDGER_DATABASE_URL": "postgresql://ledger:db-Secret-4242@127.0.0.1/ledger",
    }
    for name, value in secrets.items():
        clean_env.setenv(name, value)
    shown, text = _shown(resources_from_environment())
    for attr, name in CAPITAL_VARIABLES.items():
        if name in secrets:
            assert getattr(shown["capital"][attr], "name", None) == name
    assert getattr(shown["ledger"]["database_url"], "name", None) == "LEDGER_DATABASE_URL"
    for value in secrets.values():
        assert value not in text


def test_a_url_without_credentials_fails_at_launch_not_with_simulator_ones(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("CAPITAL_API_URL", "https://api-capital.example.invalid")
    shown, _ = _shown(resources_from_environment())
    for attr in ("api_key", "identifier", "password"):
        assert getattr(shown["capital"][attr], "name", None) == CAPITAL_VARIABLES[attr]


def test_a_run_resolves_the_variables_and_validates_them(
    recent_sim: SimulatorServer, clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    account = account_ids(recent_sim)[0]
    for name, value in {
        "CAPITAL_API_URL": recent_sim.url, "CAPITAL_API_KEY": API_KEY,
        "CAPITAL_IDENTIFIER": IDENTIFIER, "CAPITAL_PASSWORD": PASSWORD,
        "CAPITAL_RATE_LIMIT": "200", "LEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'l.sqlite'}",
        "LEDGER_EXPORT_DIR": str(tmp_path / "exports"),
    }.items():  # fmt: skip
        clean_env.setenv(name, value)
    resources = resources_from_environment()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(ACCOUNTS.name, [account])
        done = dg.materialize(
            [raw_transactions],
            instance=instance,
            resources=resources,
            partition_key=partition_key("2025-12", account),
        )
        assert done.success
        assert (tmp_path / "l.sqlite").exists()
        clean_env.setenv("CAPITAL_RATE_LIMIT", "-1")
        failed = dg.materialize(
            [raw_transactions],
            instance=instance,
            resources=resources,
            partition_key=partition_key("2025-12", account),
            raise_on_error=False,
        )
    assert not failed.success
    errors = [_chain(e.event_specific_data.error) for e in failed.all_events if e.is_failure]
    assert any("CAPITAL_RATE_LIMIT must be greater than zero" in m for m in errors), errors


def _chain(error: object) -> str:
    """An error's message with the messages of its causes."""
    parts = []
    while error is not None:
        parts.append(error.message)  # type: ignore[attr-defined]
        error = error.cause  # type: ignore[attr-defined]
    return " | ".join(parts)
