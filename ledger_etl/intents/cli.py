"""`ledger-etl intents serve | list | schema`."""

from __future__ import annotations

import csv
import io
import json
import sys
from decimal import Decimal

import click

from .views import LIST_COLUMNS


@click.group("intents")
def intents() -> None:
    """Trade intents: alert webhooks turned into validated, idempotent orders."""


@intents.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8780, show_default=True, type=int)
@click.option(
    "--live",
    is_flag=True,
    default=False,
    help="Send orders. Without it (the default) intents are validated and recorded, never sent.",
)
def serve_command(host: str, port: int, live: bool) -> None:
    """Serve POST /intents and run the executor (dry run unless --live)."""
    from ledger_etl.intents.runner import RISK_WARNING, IntentsService, Options, build
    from ledger_etl.ledger.db import make_engine, upgrade
    from ledger_etl.settings import database_url, intents_settings
    from ledger_etl.sources import open_client

    settings = intents_settings()
    click.echo(f"Risk warning: {RISK_WARNING}", err=True)
    options = Options(
        settings.secret,
        settings.hmac_secret,
        settings.allowed_ips,
        settings.symbol_map,
        settings.policy,
        settings.allowed_epics,
        settings.max_orders_per_minute,
        Decimal(settings.daily_loss_cap) if settings.daily_loss_cap else None,
        live,
        settings.allow_live_trading,
    )
    engine = make_engine(database_url())
    upgrade(engine)
    with open_client() as client:
        ctx, executor = build(engine, client, options)
        mode = "LIVE: orders are sent" if live else "dry run: nothing is sent"
        click.echo(f"intents: {mode}; listening on http://{host}:{port}/intents", err=True)
        IntentsService(ctx, executor, host, port).serve_forever()


@intents.command("list")
@click.option("--state", default=None, help="Only intents in this state (e.g. ACCEPTED).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--limit", default=1000, show_default=True, type=int)
def list_command(state: str | None, fmt: str, limit: int) -> None:
    """Intents with their state, latency (ms) and slippage, newest first."""
    from ledger_etl.intents.store import listing
    from ledger_etl.intents.views import list_row
    from ledger_etl.ledger.db import make_engine, upgrade
    from ledger_etl.settings import database_url

    engine = make_engine(database_url())
    upgrade(engine)
    rows = [list_row(r) for r in listing(engine, state, limit)]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=LIST_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        click.echo(out.getvalue(), nl=False)
    else:
        _table(rows)


def _table(rows: list[dict]) -> None:
    shown = (
        "id",
        "received_at",
        "account_id",
        "epic",
        "action",
        "state",
        "ack_ms",
        "confirm_ms",
        "slippage",
        "reason",
    )
    if not rows:
        click.echo("no intents", err=True)
        sys.exit(0)
    cells = [[("" if r[c] is None else str(r[c]))[:60] for c in shown] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(shown)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(shown, widths, strict=True)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


@intents.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of the intent payload."""
    from ledger_etl.intents.payload import payload_schema

    click.echo(json.dumps(payload_schema(), indent=2))
