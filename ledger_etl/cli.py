"""`ledger-etl`: the command line. Commands call the same functions the Dagster assets call."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ledger_etl import __version__
from ledger_etl.market.extras_cli import register as _register_market_extras

if TYPE_CHECKING:
    from ledger_etl.sync import SyncReport


# Exit statuses, the one place they are decided: 0 done, 1 done but incomplete or a problem
# found (gaps, failed windows, verification problems, a statement that cannot be published),
# 2 a bad argument, setting or name, 3 the Capital.com API failed, 4 the ledger database failed.
EXIT_INCOMPLETE, EXIT_USAGE, EXIT_API, EXIT_DATABASE = 1, 2, 3, 4


def exit_code_for(exc: BaseException) -> int | None:
    """The exit status for an error the package raises on purpose; None for anything else."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    from ledger_etl.capital.errors import CapitalError
    from ledger_etl.errors import InputError, LedgerEtlError

    for kind, code in (
        (InputError, EXIT_USAGE),
        (CapitalError, EXIT_API),
        (LedgerEtlError, EXIT_INCOMPLETE),
        (OperationalError, EXIT_DATABASE),
        (DBAPIError, EXIT_DATABASE),
    ):
        if isinstance(exc, kind):
            return code
    return None


def error_line(exc: BaseException) -> str:
    """One line for a person: a database error is reduced to its driver's first line (the
    statement and parameters SQLAlchemy appends could carry row data)."""
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        first = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
        return f"the ledger database failed: {first}{_sqlite_hint(first)}"
    return " ".join(str(exc).split()) or type(exc).__name__


def _sqlite_hint(message: str) -> str:
    """What to do about the two SQLite failures a person meets: a lock held too long by
    another process, and a database file that cannot be written."""
    from ledger_etl.settings import SettingsError, sqlite_busy_timeout

    if message == "database is locked":
        try:
            waited = f"{sqlite_busy_timeout():g} s"
        except SettingsError:
            waited = "the busy timeout"
        return (
            f" (another process held it locked for more than {waited}; wait for it to finish, "
            "or raise LEDGER_SQLITE_BUSY_TIMEOUT)"
        )
    if "readonly database" in message:
        return " (the SQLite database is read-only here; open it writable or use another file)"
    return ""


class _Failure(click.ClickException):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Cli(click.Group):
    """Turns the package's own errors into one clear line and the status `exit_code_for` gives."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            code = exit_code_for(exc)
            if code is None:
                raise
            raise _Failure(error_line(exc), code) from None


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ledger-etl")
def main() -> None:
    """Capital.com accounts as auditable data: ledger, statements, trading state, market data."""


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
    "--cache-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Accepted for compatibility; balances are drawn per day and need no checkpoint.",
)
@click.option("--no-cache", is_flag=True, default=False, help="Accepted for compatibility.")
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
    cache_dir: Path | None,
    no_cache: bool,
    log_level: str,
) -> None:
    """Serve the simulator over HTTP (clients use http://HOST:PORT, adding /api/v1).

    Balances are drawn per day, never summed from the history (see simulator.balances); the
    items a login reads are warmed in the background from the start."""
    from dataclasses import replace

    from ledger_etl.settings import project_root
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
        if no_cache:
            config = replace(config, cache_dir=None)
        elif cache_dir is not None or config.cache_dir is None:
            config = replace(config, cache_dir=cache_dir or project_root() / "var" / "simulator")
        sim = Simulator(config)
    except (ValueError, FaultConfigError, json.JSONDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"Capital.com simulator on http://{host}:{port}/api/v1 (seed "
        f"{config.world.seed}, {len(sim.world.accounts)} accounts, history from "
        f"{config.world.start}); operator API under /_sim/",
        err=True,
    )
    sim.start_warm_up()
    serve_forever(sim, host, port, log_level)


# -- ledger ------------------------------------------------------------------------------------
def _engine(database_url: str | None):
    from ledger_etl.ledger.db import make_engine
    from ledger_etl.settings import database_url as configured_url

    return make_engine(database_url or configured_url())


_DATABASE_OPTION = click.option(
    "--database-url",
    default=None,
    envvar="LEDGER_DATABASE_URL",
    show_envvar=True,
    help="SQLAlchemy URL of the ledger (default: a SQLite file under var/).",
)


_OUT_OPTION = click.option(
    "--out",
    "out_dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Export directory (default: $LEDGER_EXPORT_DIR or var/exports).",
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
    for account in report.accounts:
        for name, summary in account.endpoints.items():
            if summary.removed:
                click.echo(
                    f"{account.account_id} {name}: {summary.removed} stored entries removed, "
                    "their re-fetched version is rejected (kept in quarantine)"
                )
    for account_id, reason in report.balances_skipped.items():
        click.echo(f"balance of {account_id} not recorded (kept in quarantine): {reason}")
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
@click.option(
    "--reset-source",
    is_flag=True,
    help="Accounts this ledger holds from another source (another API, login or simulated "
    "world) are emptied and filled again from this one, instead of refused.",
)
@_DATABASE_OPTION
def sync_command(
    start: str, end: str, accounts: tuple[str, ...], reset_source: bool, database_url: str | None
) -> None:
    """Fetch both history endpoints for [from, to) and upsert them into the ledger."""
    from ledger_etl.sources import open_client
    from ledger_etl.sync import planned_windows, sync_range

    first, last = _range(start, end)
    engine = _engine(database_url)
    with open_client(say=lambda m: click.echo(m, err=True), ledger=engine) as client:
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
                reset_source=reset_source,
            )
    _print_sync(report)
    if not report.ok:
        sys.exit(EXIT_INCOMPLETE)


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
    """Print the parts of [from, to) the ledger has no complete fetch for; exit 1 if any.

    Each gap is `account endpoint [start, end)` in UTC; an account's time before its first
    movement is no gap once the ledger proves that movement was the first (see
    `ledger.coverage.proven_first_movement`)."""
    from ledger_etl.ledger.coverage import proven_first_movement, stored_gaps
    from ledger_etl.ledger.db import upgrade
    from ledger_etl.ledger.ingest import known_accounts
    from ledger_etl.statements.build import iso_z
    from ledger_etl.sync import ENDPOINTS, SyncError

    first, last = _range(start, end)
    engine = _engine(database_url)
    upgrade(engine)
    known = known_accounts(engine)
    unknown = [a for a in accounts if a not in known]
    if unknown:
        raise SyncError(
            f"unknown account(s) {', '.join(unknown)}; the ledger knows "
            f"{', '.join(known) or 'none'}"
        )
    chosen = list(accounts) or known
    if not chosen:
        click.echo("the ledger knows no accounts yet: everything is a gap; run `ledger-etl sync`")
        sys.exit(EXIT_INCOMPLETE)
    found = 0
    for account in chosen:
        opened = proven_first_movement(engine, account)
        lower = max(first, opened) if opened is not None else first
        if opened is not None and opened > first:
            click.echo(
                f"{account}: history proven complete from {iso_z(opened)}, its first movement"
            )
        for spec in ENDPOINTS:
            for gap in stored_gaps(engine, account, spec.name, lower, last) if lower < last else []:
                found += 1
                click.echo(f"{account}\t{spec.name}\t[{iso_z(gap.start)}, {iso_z(gap.end)})")
    if found:
        click.echo(f"{found} gap(s)")
        sys.exit(EXIT_INCOMPLETE)
    click.echo(f"no gaps in [{start}, {end}) for {len(chosen)} account(s)")


@main.command("demo")
@click.option(
    "--months",
    default=3,
    show_default=True,
    type=click.IntRange(1, 24),
    help="How many complete months to close.",
)
def demo(months: int) -> None:
    """Close the last complete months of every account through the Dagster definitions (against
    the simulator unless CAPITAL_API_URL is set) and print the statements written."""
    import time

    from ledger_etl.defs.demo import run_demo

    started = time.perf_counter()
    rows = run_demo(months, say=lambda m: click.echo(m, err=True))
    header = (
        f"{'account':<18} {'month':<7} {'entries':>7} {'opening':>14} {'closing':>14} "
        f"{'ccy':<4} {'status':<11} {'reconciliation':<14} folder"
    )
    click.echo(header)
    click.echo("-" * len(header))
    for row in rows:
        click.echo(
            f"{row.account_id:<18} {row.month:<7} {row.entries:>7} {row.opening:>14} "
            f"{row.closing:>14} {row.currency:<4} {row.status:<11} "
            f"{row.reconciliation:<14} {row.folder}"
        )
    click.echo(
        f"{len(rows)} statement(s) in {time.perf_counter() - started:.0f}s; open the runs "
        "in the Dagster UI with `make dev`"
    )
    if not all(r.run_ok for r in rows):
        sys.exit(EXIT_INCOMPLETE)


# -- statements --------------------------------------------------------------------------------
@main.command("statement")
@click.option("--month", required=True, help="Calendar month, YYYY-MM (UTC).")
@click.option(
    "--account",
    "accounts",
    multiple=True,
    help="Account id (repeatable; default: every account in the ledger).",
)
@_OUT_OPTION
@click.option(
    "--format",
    "formats",
    default="csv,xlsx,json,parquet,pdf",
    show_default=True,
    help="Comma-separated formats; statement.json is always written (diffs are made from it).",
)
@click.option(
    "--run-id",
    default=None,
    help="Run id recorded in the manifest, YYYYMMDDTHHMMSSZ-<12 hex> (default: a new one).",
)
@click.option(
    "--provisional",
    is_flag=True,
    help="Allow the current month, which is not closed yet (always PROVISIONAL).",
)
@_DATABASE_OPTION
def statement_command(
    month: str,
    accounts: tuple[str, ...],
    out_dir: Path | None,
    formats: str,
    run_id: str | None,
    provisional: bool,
    database_url: str | None,
) -> None:
    """Publish the month's statement of each account; print each folder written or unchanged."""
    from ledger_etl.ledger.db import upgrade
    from ledger_etl.runs import RUN_ID
    from ledger_etl.settings import export_dir
    from ledger_etl.statements import (
        list_accounts,
        parse_month,
        publish_statement,
        validate_account_id,
    )
    from ledger_etl.statements.export import month_closed, normalize_formats

    month_closed(parse_month(month), datetime.now(UTC), provisional)  # refuses before any work
    if run_id is not None and not RUN_ID.match(run_id):
        raise click.BadParameter(f"{run_id[:80]!r} is not a run id (YYYYMMDDTHHMMSSZ-<12 hex>)")
    chosen_formats = normalize_formats(formats)
    chosen = [validate_account_id(a) for a in accounts]
    engine = _engine(database_url)
    upgrade(engine)
    chosen = chosen or list_accounts(engine)
    if not chosen:
        raise click.ClickException("the ledger knows no accounts yet; run `ledger-etl sync`")
    target = out_dir or export_dir()
    for account in chosen:
        try:
            result = publish_statement(
                engine, account, month, target, run_id, chosen_formats, provisional=provisional
            )
        except OSError as exc:  # read-only or full before a version was renamed into place
            raise click.ClickException(
                f"cannot write the {account} {month} statement under {target}: "
                f"{exc.strerror or exc} ({exc.filename or target}); nothing was published"
            ) from None
        for number, problems in result.damaged:
            click.echo(
                f"  {account} {month} v{number} is damaged and kept as evidence, never the "
                f"current version: {problems[0]}",
                err=True,
            )
        if result.index_rewritten:
            click.echo(
                f"  {account} {month}: versions.json did not match the version folders; "
                "rewritten from them",
                err=True,
            )
        statement = result.statement
        note = f"{statement.status}, reconciliation {statement.reconciliation.status}"
        if statement.status_reasons:
            note += f" ({'; '.join(statement.status_reasons)})"
        # The folder and what was published in it, together on one stream, in order.
        if result.status == "unchanged":
            click.echo(f"unchanged: {result.folder}")
        else:
            click.echo(f"{result.folder}")
        click.echo(f"  {account} {month} v{result.version}: {note}")


@main.command("verify")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--repair",
    is_flag=True,
    help="First rewrite each month's versions.json from its version folders, recording the "
    "damaged ones (nothing is deleted or changed inside a version folder).",
)
def verify_command(path: Path, repair: bool) -> None:
    """Check the hashes, every fact two files state (row by row across formats) and
    versions.json, in a version folder or every month under PATH."""
    from ledger_etl.statements.repair import repair_tree
    from ledger_etl.statements.verify import inspect_tree

    refused: list[str] = []
    if repair:
        done, refused = repair_tree(path)
        for line in done:
            click.echo(f"repaired: {line}")
    found = inspect_tree(path)
    for note in found.notes:
        click.echo(f"kept: {note}")
    problems = [*refused, *(p for p in found.problems if p not in refused)]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise click.ClickException(f"{len(problems)} problem(s); first: {problems[0]}")
    click.echo(f"verified: {path}")


@main.command("published")
@click.option("--account", default=None, help="Only this account id.")
@click.option("--month", default=None, help="Only this month, YYYY-MM.")
@_OUT_OPTION
def published_command(account: str | None, month: str | None, out_dir: Path | None) -> None:
    """List the current published version of each account-month, with its status."""
    from ledger_etl.settings import export_dir
    from ledger_etl.statements.published import PublishedStatements

    reader = PublishedStatements(out_dir or export_dir())
    header = (
        f"{'account':<18} {'month':<7} {'version':>7} {'entries':>7} {'closing':>14} "
        f"{'ccy':<4} {'status':<11} {'reconciliation':<14} folder"
    )
    rows = list(reader.summaries(account, month))
    if not rows:
        click.echo(f"no published statements under {reader.root}", err=True)
        sys.exit(EXIT_INCOMPLETE)
    click.echo(header)
    click.echo("-" * len(header))
    for row in rows:
        shown = f"v{row.version}/{row.versions}"
        click.echo(
            f"{row.account_id:<18} {row.month:<7} {shown:>7} {row.entries:>7} "
            f"{row.closing_balance:>14} {row.currency:<4} {row.status:<11} "
            f"{row.reconciliation:<14} {row.folder}"
        )


# Commands of the other domains live with them and are registered here.
from ledger_etl.intents.cli import intents as _intents  # noqa: E402
from ledger_etl.market.cli import register as _register_market  # noqa: E402
from ledger_etl.service.cli import COMMANDS as _SERVICE_COMMANDS  # noqa: E402
from ledger_etl.trading.cli import COMMANDS as _TRADING_COMMANDS  # noqa: E402

for _command in (*_TRADING_COMMANDS, *_SERVICE_COMMANDS, _intents):
    main.add_command(_command)
_register_market(main)  # `prices` and `stream`
_register_market_extras(main)  # `sentiment`, `watchlists`, `templates`


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
