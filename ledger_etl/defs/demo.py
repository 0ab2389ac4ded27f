"""`ledger-etl demo`: the last complete months of every account, through the Dagster definitions,
into a persistent instance (so the runs are there when `dagster dev` opens afterwards).

With no CAPITAL_API_URL, each run starts the bundled simulator serving the ledger's world (see
`ledger_etl.sources`), exactly as `make dev` and the CLI do, so they all fill one ledger from
one world."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from ledger_etl.defs.history.automation import discover_accounts
from ledger_etl.defs.history.partitions import partition_key
from ledger_etl.defs.resources import resources_from_settings
from ledger_etl.settings import capital_settings, export_environment
from ledger_etl.settings import dagster_home as settings_dagster_home
from ledger_etl.sources import bundled_world
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


def run_demo(months: int, say: Callable[[str], None] = print) -> list[DemoRow]:
    from ledger_etl.definitions import build_definitions

    home = dagster_home()
    say(f"Dagster instance: {home}")
    rows: list[DemoRow] = []
    resources = resources_from_settings()
    capital, ledger = resources["capital"], resources["ledger"]
    first_month = None
    if capital_settings().uses_simulator:
        world = bundled_world(ledger.engine())
        first_month = datetime(world.start.year, world.start.month, 1, tzinfo=UTC)
        say(
            "CAPITAL_API_URL is not set: every run uses the bundled Capital.com simulator, "
            f"serving this ledger's world (seed {world.seed}, accounts opened {world.start}); "
            "every month since then is closed, so each opening balance is proven"
        )
    with dg.DagsterInstance.get() as instance:
        ids, new = discover_accounts(capital, instance)
        say(f"{len(ids)} account(s) registered as partitions ({len(new)} new)")
        with capital.open_client(ledger=ledger.engine()) as client:
            now = client.server_time()
        periods = last_complete_months(now, months)
        if first_month is not None:
            periods = last_complete_months(now, max(months, _months_since(first_month, now)))
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


def _months_since(first: datetime, now: datetime) -> int:
    """Complete months from `first`'s month up to (not including) `now`'s month."""
    return (now.year - first.year) * 12 + now.month - first.month


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
