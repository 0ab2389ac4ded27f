"""`ledger-etl demo`: the last complete months of every account, through the Dagster definitions,
into a persistent instance (so the runs are there when `dagster dev` opens afterwards)."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg

from ledger_etl.defs.history.automation import discover_accounts
from ledger_etl.defs.history.partitions import partition_key
from ledger_etl.defs.resources import CapitalApiResource, LedgerResource
from ledger_etl.settings import (
    capital_settings,
    environment_overlay,
    export_environment,
)
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
def api_environment(say: Callable[[str], None], history_start: date) -> Iterator[None]:
    """With no CAPITAL_API_URL, serve the simulator for the whole demo and point every run's
    resources at it (one simulated world for all runs). Its accounts open on `history_start`,
    so the ledger holds their whole history and balances can reconcile with the broker's."""
    if not capital_settings().uses_simulator:
        yield
        return
    from ledger_etl.simulator import SimulatorConfig, SimulatorServer, WorldConfig

    settings = capital_settings()
    values = {
        "CAPITAL_API_KEY": settings.api_key,
        "CAPITAL_IDENTIFIER": settings.identifier,
        "CAPITAL_PASSWORD": settings.password,
    }
    config = SimulatorConfig(world=WorldConfig(start=history_start))
    with SimulatorServer(config) as server:
        say(
            f"CAPITAL_API_URL is not set: using the bundled Capital.com simulator at {server.url}"
            f" (seed 42, accounts opened {history_start})"
        )
        with environment_overlay({**values, "CAPITAL_API_URL": server.url}):
            yield


def run_demo(months: int, say: Callable[[str], None] = print) -> list[DemoRow]:
    from ledger_etl.definitions import defs

    home = dagster_home()
    say(f"Dagster instance: {home}")
    rows: list[DemoRow] = []
    periods = last_complete_months(datetime.now(UTC), months)
    with api_environment(say, periods[0][0].date()), dg.DagsterInstance.get() as instance:
        capital = CapitalApiResource()
        ledger = LedgerResource()
        ids, new = discover_accounts(capital, instance)
        say(f"{len(ids)} account(s) registered as partitions ({len(new)} new)")
        with capital.open_client() as client:
            periods = last_complete_months(client.server_time(), months)
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
