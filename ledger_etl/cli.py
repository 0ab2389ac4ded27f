"""`ledger-etl`: the command line. Commands call the same functions the Dagster assets call."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ledger_etl import __version__

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from ledger_etl.sync import SyncReport


class _Cli(click.Group):
    """Turns the project's user-facing errors into one clear line and exit status 1."""

    def invoke(self, ctx: click.Context) -> object:
        from ledger_etl.capital.errors import CapitalError
        from ledger_etl.ledger.chart import ChartError
        from ledger_etl.ledger.db import DatabaseUrlError
        from ledger_etl.settings import SettingsError

        try:
            return super().invoke(ctx)
        except (SettingsError, ChartError, DatabaseUrlError, CapitalError) as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ledger-etl")
def main() -> None:
    """Capital.com account history to a reconciled ledger and monthly statements."""


@main.group()
def simulator() -> None:
    """The bundled Capital.com API simulator."""


@simulator.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--seed", default=None, type=int, help="World seed (default 42).")
@click.option(
    "--start", "start", default=None, help="First day of history, YYYY-MM-DD (default 2025-01-01)."
)
@click.option(
    "--accounts",
    default=None,
    type=click.IntRange(1, 4),
    help="Number of financial accounts (default 2).",
)
@click.option(
    "--rows-per-day",
    default=None,
    type=click.FloatRange(min=0.1),
    help="Approximate history rows per account per day (default 12).",
)
@click.option(
    "--live/--demo",
    "live",
    default=None,
    help="Live-style currency codes (USD) instead of demo ones (USDd, the default).",
)
@click.option("--api-key", default=None, help="API key to accept (default sim-api-key).")
@click.option("--identifier", default=None, help="Login to accept (default sim@example.com).")
@click.option("--password", default=None, help="Password to accept (default sim-password).")
@click.option("--session-idle-seconds", default=None, type=click.FloatRange(min=1))
@click.option(
    "--rate-limit",
    default=None,
    type=click.IntRange(min=0),
    help="Requests per second per user before 429 (default 10; 0 disables).",
)
@click.option(
    "--history-bounds",
    default=None,
    type=click.Choice(["closed", "half-open", "left-open"]),
    help="Inclusivity of history from/to (default closed).",
)
@click.option(
    "--faults",
    "faults_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON fault profile (see ledger_etl/simulator/faults.py).",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="JSON simulator configuration; flags override it.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
def simulator_serve(
    host: str,
    port: int,
    seed: int | None,
    start: str | None,
    accounts: int | None,
    rows_per_day: float | None,
    live: bool | None,
    api_key: str | None,
    identifier: str | None,
    password: str | None,
    session_idle_seconds: float | None,
    rate_limit: int | None,
    history_bounds: str | None,
    faults_file: Path | None,
    config_file: Path | None,
    log_level: str,
) -> None:
    """Serve the simulator over HTTP (clients use http://HOST:PORT, adding /api/v1)."""
    from ledger_etl.simulator import Simulator, SimulatorConfig, load_config_file
    from ledger_etl.simulator.faults import FaultConfigError, FaultPlan
    from ledger_etl.simulator.server import serve_forever

    try:
        config = load_config_file(config_file) if config_file else SimulatorConfig()
        faults = None
        if faults_file is not None:
            faults = json.loads(faults_file.read_text(encoding="utf-8"))
            FaultPlan(faults)  # validate before serving
        config = config.with_overrides(
            seed=seed,
            start=date.fromisoformat(start) if start else None,
            accounts=accounts,
            rows_per_day=rows_per_day,
            demo=None if live is None else not live,
            api_key=api_key,
            identifier=identifier,
            password=password,
            session_idle_seconds=session_idle_seconds,
            rate_limit_per_second=rate_limit,
            history_bounds=history_bounds,
            faults=faults,
        )
        sim = Simulator(config)
    except (ValueError, FaultConfigError, json.JSONDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Capital.com simulator on http://{host}:{port}/api/v1 (seed "
        f"{config.world.seed}, {len(sim.world.accounts)} accounts, history from "
        f"{config.world.start}); operator API under /_sim/",
        err=True,
    )
    serve_forever(sim, host, port, log_level)


# -- ledger ------------------------------------------------------------------------------------
def _engine(database_url: str | None):
    from ledger_etl.ledger.db import DatabaseUrlError, make_engine
    from ledger_etl.settings import database_url as configured_url

    try:
        return make_engine(database_url or configured_url())
    except DatabaseUrlError as exc:
        raise click.ClickException(str(exc)) from None


_DATABASE_OPTION = click.option(
    "--database-url",
    default=None,
    envvar="LEDGER_DATABASE_URL",
    show_envvar=True,
    help="SQLAlchemy URL of the ledger (default: a SQLite file under var/).",
)


@main.group()
def db() -> None:
    """The ledger database."""


@db.command("upgrade")
@_DATABASE_OPTION
def db_upgrade(database_url: str | None) -> None:
    """Apply the ledger's migrations (also done automatically before any write)."""
    from ledger_etl.ledger.db import upgrade

    engine = _engine(database_url)
    upgrade(engine)
    click.echo(f"ledger schema is up to date ({engine.url.render_as_string(hide_password=True)})")


@db.command("ddl")
@click.option("--dialect", type=click.Choice(["sqlite", "postgresql"]), required=True)
def db_ddl(dialect: str) -> None:
    """Print the reference DDL of the ledger schema (what sql/*.sql holds)."""
    from ledger_etl.ledger.ddl import render_ddl

    click.echo(render_ddl(dialect), nl=False)


def _range(start: str, end: str) -> tuple[datetime, datetime]:
    from ledger_etl.sync import SyncError, utc_day

    try:
        first, last = utc_day(start), utc_day(end)
    except SyncError as exc:
        raise click.BadParameter(str(exc)) from None
    if not first < last:
        raise click.BadParameter(f"--from {start} must be before --to {end} (to is exclusive)")
    return first, last


def _print_sync(report: SyncReport) -> None:
    header = (
        f"{'account':<20} {'endpoint':<13} {'rows':>7} {'new':>7} {'changed':>7} "
        f"{'same':>7} {'quarant.':>8} {'windows':>7} {'failed':>6} {'retries':>7}"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for account in report.accounts:
        for name, summary in account.endpoints.items():
            click.echo(
                f"{account.account_id:<20} {name:<13} {summary.rows:>7} {summary.inserted:>7} "
                f"{summary.changed:>7} {summary.unchanged:>7} {summary.quarantined:>8} "
                f"{summary.windows:>7} {summary.failed_windows:>6} {summary.retries:>7}"
            )
    click.echo(
        f"run {report.run_id}: "
        + (
            "complete"
            if report.ok
            else "INCOMPLETE - some windows failed; run `ledger-etl gaps` for the ranges"
        )
    )


@main.command("sync")
@click.option("--from", "start", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--to", "end", required=True, help="Day after the last, YYYY-MM-DD (exclusive).")
@click.option(
    "--account", "accounts", multiple=True, help="Account id (repeatable; default: every account)."
)
@_DATABASE_OPTION
def sync_command(start: str, end: str, accounts: tuple[str, ...], database_url: str | None) -> None:
    """Fetch both history endpoints for [from, to) and upsert them into the ledger."""
    from ledger_etl.capital.errors import CapitalError
    from ledger_etl.sources import open_client
    from ledger_etl.sync import SyncError, planned_windows, sync_range

    first, last = _range(start, end)
    engine = _engine(database_url)
    try:
        with open_client(say=lambda m: click.echo(m, err=True)) as client:
            total = planned_windows(first, last, len(accounts) or len(client.accounts()))
            with click.progressbar(
                length=total, label="fetching windows", file=sys.stderr, show_pos=True
            ) as bar:
                report = sync_range(
                    client,
                    engine,
                    first,
                    last,
                    accounts or None,
                    on_window=lambda r: bar.update(0 if r.parent else 1),
                )
    except (SyncError, CapitalError) as exc:
        raise click.ClickException(str(exc)) from None
    _print_sync(report)
    if not report.ok:
        sys.exit(1)


@main.command("gaps")
@click.option("--from", "start", required=True, help="First day, YYYY-MM-DD (UTC).")
@click.option("--to", "end", required=True, help="Day after the last, YYYY-MM-DD (exclusive).")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="Account id (repeatable; default: every account in the ledger).",
)
@_DATABASE_OPTION
def gaps_command(start: str, end: str, accounts: tuple[str, ...], database_url: str | None) -> None:
    """Print the parts of [from, to) the ledger has no complete fetch for; exit 1 if any."""
    from ledger_etl.ledger.db import upgrade
    from ledger_etl.ledger.ingest import known_accounts, stored_gaps
    from ledger_etl.sync import ENDPOINTS

    first, last = _range(start, end)
    engine = _engine(database_url)
    upgrade(engine)
    chosen = list(accounts) or known_accounts(engine)
    if not chosen:
        click.echo("the ledger knows no accounts yet: everything is a gap; run `ledger-etl sync`")
        sys.exit(1)
    found = 0
    for account in chosen:
        for spec in ENDPOINTS:
            for gap in stored_gaps(engine, account, spec.name, first, last):
                found += 1
                click.echo(
                    f"{account}\t{spec.name}\t{gap.start.isoformat()}\t{gap.end.isoformat()}"
                )
    if found:
        click.echo(f"{found} gap(s)", err=True)
        sys.exit(1)
    click.echo(f"no gaps in [{start}, {end}) for {len(chosen)} account(s)")


@main.command("demo")
@click.option(
    "--months",
    default=3,
    show_default=True,
    type=click.IntRange(1, 24),
    help="How many complete months to sync.",
)
@_DATABASE_OPTION
def demo(months: int, database_url: str | None) -> None:
    """Sync the last complete months from the API (the simulator by default) and show them."""
    from ledger_etl.capital.errors import CapitalError
    from ledger_etl.sources import open_client
    from ledger_etl.sync import last_complete_months, planned_windows, sync_range

    engine = _engine(database_url)
    try:
        with open_client(say=lambda m: click.echo(m, err=True)) as client:
            periods = last_complete_months(client.server_time(), months)
            first, last = periods[0][0], periods[-1][1]
            accounts = client.accounts()
            click.echo(
                f"{len(accounts)} account(s): "
                + ", ".join(f"{a.account_id} ({a.currency})" for a in accounts)
            )
            with click.progressbar(
                length=planned_windows(first, last, len(accounts)),
                label=f"syncing {first:%Y-%m} to {periods[-1][0]:%Y-%m}",
                file=sys.stderr,
                show_pos=True,
            ) as bar:
                report = sync_range(
                    client,
                    engine,
                    first,
                    last,
                    kind="demo",
                    on_window=lambda r: bar.update(0 if r.parent else 1),
                )
    except CapitalError as exc:
        raise click.ClickException(str(exc)) from None
    _print_sync(report)
    _print_sample(engine, report)
    if not report.ok:
        sys.exit(1)


def _print_sample(engine: Engine, report: SyncReport) -> None:
    from sqlalchemy import select

    from ledger_etl.ledger.schema import ledger_entries as e

    with engine.connect() as conn:
        for account in report.accounts:
            rows = conn.execute(
                select(e)
                .where(
                    e.c.account_id == account.account_id,
                    e.c.posted_at >= report.start,
                    e.c.posted_at < report.end,
                )
                .order_by(e.c.posted_at.desc())
                .limit(5)
            ).all()
            click.echo(f"\nlatest entries of {account.account_id}:")
            for row in rows:
                click.echo(
                    f"  {row.posted_at:%Y-%m-%d %H:%M:%S} {row.reference} "
                    f"{row.transaction_type:<18} {row.amount:>12} {row.currency} "
                    f"{row.ledger_account}"
                )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
