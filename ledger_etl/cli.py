"""`ledger-etl`: the command line. Commands call the same functions the Dagster assets call."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click

from ledger_etl import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
