"""`ledger-etl positions | orders | exposure | lifecycle | snapshot | verify-changelog`.

Every read answers from stored snapshots (`--at` picks the latest complete poll at or before
that instant); only `snapshot` talks to the broker.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ledger_etl.errors import InputError

FORMAT_CHOICE = click.Choice(["table", "json", "csv"])


def parse_at(value: str | None) -> datetime | None:
    """An ISO 8601 instant; without an offset it is UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--at {value!r} is not an ISO 8601 instant") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _engine(database_url: str | None):
    from ledger_etl.ledger.db import make_engine, upgrade
    from ledger_etl.settings import database_url as configured

    engine = make_engine(database_url or configured())
    if not _at_head(engine):
        upgrade(engine)  # Alembic costs most of a read command's start-up: only when needed
    return engine


def _at_head(engine: Any) -> bool:
    """True when the database holds the newest migration (the highest-numbered file)."""
    from ledger_etl.ledger.db import MIGRATIONS

    ids = sorted(p.name.split("_")[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))
    try:
        with engine.connect() as conn:
            found = list(conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars())
    except Exception:  # no table yet, or no database: migrate
        return False
    return bool(ids) and found == [ids[-1]]


def _account(engine: Any, account: str | None) -> str:
    from sqlalchemy import select

    from ledger_etl.ledger.schema import trading_polls

    if account:
        return account
    with engine.connect() as conn:
        known = sorted(conn.execute(select(trading_polls.c.account_id).distinct()).scalars())
    if len(known) == 1:
        return known[0]
    if not known:
        raise InputError("no account has been polled yet: run `ledger-etl snapshot` first")
    raise InputError(f"several accounts are stored; pass --account ({', '.join(known)})")


def _plain(value: Any) -> Any:
    from .query import plain

    return plain(value)


def _emit(rows: list[dict[str, Any]], fmt: str, meta: dict[str, Any]) -> None:
    from ledger_etl.statements.writers_csv import safe_text

    rows = [{k: _plain(v) for k, v in r.items()} for r in rows]
    if fmt == "json":
        click.echo(json.dumps({**meta, "rows": rows}, indent=2))
        return
    columns = list(rows[0]) if rows else []
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([safe_text("" if r[c] is None else str(r[c])) for c in columns])
        click.echo(out.getvalue(), nl=False)
        return
    click.echo(" ".join(f"{k}={v}" for k, v in meta.items()))
    _table(columns, [[("" if r[c] is None else str(r[c])) for c in columns] for r in rows])


def _table(columns: list[str], cells: list[list[str]]) -> None:
    if not columns:
        click.echo("(none)")
        return
    widths = [
        max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
        for i, c in enumerate(columns)
    ]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


_DB = click.option(
    "--database-url",
    default=None,
    envvar="LEDGER_DATABASE_URL",
    help="SQLAlchemy URL of the ledger (default: a SQLite file under var/).",
)
_ACCOUNT = click.option("--account", default=None, help="Account id (default: the only one).")
_AT = click.option("--at", "at", default=None, help="ISO instant (UTC without offset).")


@click.command("positions")
@_ACCOUNT
@_AT
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="table", show_default=True)
@_DB
def positions_command(account: str | None, at: str | None, fmt: str, database_url: str | None):
    """Open positions as stored at the latest poll (or at --at)."""
    from .query import snapshot_rows

    engine = _engine(database_url)
    account_id = _account(engine, account)
    as_of, rows = snapshot_rows(engine, "position", account_id, parse_at(at))
    _emit(rows, fmt, {"account_id": account_id, "as_of": as_of.isoformat()})


@click.command("orders")
@_ACCOUNT
@_AT
@click.option("--state", default=None, help="Only orders in this lifecycle state.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="table", show_default=True)
@_DB
def orders_command(account, at, state, fmt, database_url):
    """Working orders as stored at the latest poll (or at --at), with their lifecycle state."""
    from .query import orders_at

    engine = _engine(database_url)
    account_id = _account(engine, account)
    as_of, rows = orders_at(engine, account_id, parse_at(at), state)
    _emit(rows, fmt, {"account_id": account_id, "as_of": as_of.isoformat()})


@click.command("exposure")
@_ACCOUNT
@_AT
@click.option(
    "--policy",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Governance policy (YAML or JSON); breaches are reported.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv", "xlsx"]),
    default="table",
    show_default=True,
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the report here (atomically, with a manifest) instead of stdout.",
)
@_DB
def exposure_command(account, at, policy, fmt, out, database_url):
    """Exposure per position and in total, in the account currency, from stored snapshots."""
    from .export import render_csv, render_json, write_report
    from .query import exposure_at, exposure_json

    engine = _engine(database_url)
    account_id = _account(engine, account)
    instant = parse_at(at)
    if policy is not None:
        from .governance import govern
        from .policy import load_policy

        exposure = govern(
            engine, account_id, load_policy(policy), at=instant, record=False
        ).exposure
    else:
        exposure = exposure_at(engine, account_id, instant)
    report = exposure_json(exposure)
    if out is not None:
        manifest = write_report(report, out, None if fmt == "table" else fmt)
        click.echo(f"wrote {out} ({manifest['files'][out.name]['sha256'][:12]}…) and its manifest")
        return
    if fmt == "xlsx":
        raise InputError("--format xlsx needs --out FILE")
    if fmt == "json":
        sys.stdout.write(render_json(report).decode())
    elif fmt == "csv":
        sys.stdout.write(render_csv(report).decode())
    else:
        keys = (
            "deal_id",
            "epic",
            "direction",
            "size",
            "price",
            "notional",
            "margin",
            "upl",
            "risk_to_stop",
        )
        click.echo(f"account {account_id} in {report['currency']} as of {report['as_of']}")
        _table(
            list(keys),
            [[str(p[k] if p[k] is not None else "-") for k in keys] for p in report["positions"]],
        )
        click.echo("totals: " + ", ".join(f"{k} {v}" for k, v in report["totals"].items()))
        for b in report["breaches"]:
            click.echo(f"BREACH {b['rule']} {b['deal_id'] or ''}: {b['detail']}")


@click.command("lifecycle")
@click.argument("deal_id")
@_ACCOUNT
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@_DB
def lifecycle_command(deal_id, account, fmt, database_url):
    """One deal: intended values, each transition (time, source), executed values, and the
    ledger's transactions for it. Given a trade intent's id: the intent, its deals, and theirs."""
    from ledger_etl.intents.lineage import find_intent, intent_lineage, lineage_lines

    from .query_lifecycle import lifecycle_report

    engine = _engine(database_url)
    intent = find_intent(engine, deal_id)  # a trade intent's id: its whole lineage
    if intent is not None:
        lineage = intent_lineage(engine, intent)
        text = json.dumps(lineage, indent=2, default=str) if fmt == "json" else None
        click.echo(text or "\n".join(lineage_lines(lineage)))
        return
    report = lifecycle_report(engine, _account(engine, account), deal_id)
    if fmt == "json":
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"{report['deal_id']} ({report['kind']}, {report['epic']}): {report['state']}")
    click.echo(f"intended: {json.dumps(report['intended'], default=str)}")
    for t in report["transitions"]:
        flag = f"  [{t['flag']}]" if t["flag"] else ""
        click.echo(
            f"  #{t['seq']} {t['occurred_at']} {t['event']}: {t['from_state']} -> "
            f"{t['to_state']} via {t['source']}{flag}"
        )
    click.echo(f"executed: {json.dumps(report['executed'], default=str)}")
    for tx in report["transactions"]:
        click.echo(f"  {tx['posted_at']} {tx['transaction_type']} {tx['amount']} {tx['currency']}")
    if report["flags"]:
        click.echo("flags: " + ", ".join(report["flags"]))


@click.command("snapshot")
@click.option("--account", "accounts", multiple=True, help="Account id (default: every one).")
@click.option(
    "--mapping",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Instrument mapping file (epic -> ISIN / FIGI / TRADINGVIEW).",
)
@click.option(
    "--policy",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Governance policy; new breaches go to <export dir>/_audit/alerts.jsonl.",
)
@_DB
def snapshot_command(accounts, mapping, policy, database_url):
    """Poll positions and working orders once now and store what changed."""
    from ledger_etl.settings import export_dir
    from ledger_etl.sources import open_client

    from .governance import govern
    from .policy import load_policy
    from .poll import poll_account

    rules = load_policy(policy) if policy is not None else None
    engine = _engine(database_url)
    failed = False
    with open_client(say=lambda m: click.echo(m, err=True), ledger=engine) as client:
        for account_id in accounts or [a.account_id for a in client.accounts()]:
            result = poll_account(client, engine, account_id, mapping_file=mapping)
            failed |= result.status != "complete"
            click.echo(
                f"{account_id}: {result.status}, {result.positions} positions, "
                f"{result.orders} orders, {result.snapshot_rows} snapshot rows, "
                f"{result.transitions} transitions, {len(result.problems)} flagged"
            )
            for problem in result.problems:
                click.echo(f"  flagged {problem['kind']}: {problem['reason']}", err=True)
            if rules is not None and result.status == "complete":
                outcome = govern(engine, account_id, rules, export_dir=export_dir())
                click.echo(f"  {len(outcome.breaches)} breaches, {len(outcome.new_alerts)} new")
    if failed:
        sys.exit(1)


@click.command("verify-changelog")
@_ACCOUNT
@_DB
def verify_changelog_command(account, database_url):
    """Check the trading change log's hash chain; exit 1 if any entry was edited, removed or
    reordered."""
    from . import changelog

    engine = _engine(database_url)
    with engine.connect() as conn:
        checked, problems = changelog.verify(conn, account)
    for p in problems:
        click.echo(f"account {p.account_id} entry {p.seq}: {p.reason}")
    click.echo(f"{checked} entries checked, {len(problems)} problems")
    if problems:
        sys.exit(1)


COMMANDS = (
    positions_command,
    orders_command,
    exposure_command,
    lifecycle_command,
    snapshot_command,
    verify_changelog_command,
)
