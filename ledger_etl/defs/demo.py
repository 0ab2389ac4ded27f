"""`ledger-etl demo`: the last complete months of every account, through the Dagster definitions,
into a persistent instance (so the runs are there when `dagster dev` opens afterwards)."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from ledger_etl.defs.history.automation import discover_accounts
from ledger_etl.defs.history.partitions import partition_key
from ledger_etl.defs.resources import resources_from_settings
from ledger_etl.settings import capital_settings, export_environment
from ledger_etl.settings import dagster_home as settings_dagster_home
from ledger_etl.statements.published import PublishedStatements
from ledger_etl.sync import last_complete_months


@dataclass(frozen=True)
class DemoRow:
    account_id: str
    month: str
    entries: int
    opening: str
    closing: str
    currency: str
    status: str
    reconciliation: str
    folder: str
    run_ok: bool


def dagster_home() -> Path:
    """`$DAGSTER_HOME`, or the repository's `dagster_home/` (created with its dagster.yaml)."""
    home = settings_dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    export_environment({"DAGSTER_HOME": str(home.resolve())})
    return home


@contextmanager
def demo_resources(say: Callable[[str], None], history_start: date) -> Iterator[dict[str, Any]]:
    """The runs' resources. With no CAPITAL_API_URL, the simulator is served for the whole demo
    and every run points at it (one simulated world for all runs). Its accounts open on
    `history_start`, so the ledger holds their whole history and balances can reconcile."""
    settings = capital_settings()
    if not settings.uses_simulator:
        yield resources_from_settings(settings)
        return
    from ledger_etl.simulator import SimulatorConfig, SimulatorServer, WorldConfig

    config = SimulatorConfig(world=WorldConfig(start=history_start))
    with SimulatorServer(config) as server:
        say(
            f"CAPITAL_API_URL is not set: using the bundled Capital.com simulator at {server.url}"
            f" (seed 42, accounts opened {history_start})"
        )
        yield resources_from_settings(replace(settings, api_url=server.url))


def run_demo(months: int, say: Callable[[str], None] = print) -> list[DemoRow]:
    from ledger_etl.definitions import build_definitions

    home = dagster_home()
    say(f"Dagster instance: {home}")
    rows: list[DemoRow] = []
    periods = last_complete_months(datetime.now(UTC), months)
    with (
        demo_resources(say, periods[0][0].date()) as resources,
        dg.DagsterInstance.get() as instance,
    ):
        capital, ledger = resources["capital"], resources["ledger"]
        ids, new = discover_accounts(capital, instance)
        say(f"{len(ids)} account(s) registered as partitions ({len(new)} new)")
        with capital.open_client() as client:
            periods = last_complete_months(client.server_time(), months)
        defs = build_definitions(resources)
        job = defs.resolve_job_def("close_month")
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        keys = [(f"{start:%Y-%m}", account) for account in ids for start, _ in periods]
        for index, (month, account) in enumerate(keys, 1):
            started = time.perf_counter()
            result = job.execute_in_process(
                instance=instance,
                raise_on_error=False,
                run_config=quiet,
                partition_key=partition_key(month, account),
            )
            say(
                f"[{index}/{len(keys)}] {account} {month}: "
                f"{'ok' if result.success else 'FAILED'} in {time.perf_counter() - started:.1f}s"
                f" (run {result.run_id[:8]})"
            )
            rows.append(_row(ledger.exports(), account, month, result.success))
    return rows


def _row(exports: Path, account: str, month: str, run_ok: bool) -> DemoRow:
    found = next(iter(PublishedStatements(exports).summaries(account, month)), None)
    if found is None:
        return DemoRow(account, month, 0, "-", "-", "-", "-", "-", "(not written)", run_ok)
    return DemoRow(
        account,
        month,
        found.entries,
        found.opening_balance,
        found.closing_balance,
        found.currency,
        found.status,
        found.reconciliation,
        str(found.folder),
        run_ok,
    )
