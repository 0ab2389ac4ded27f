"""`ledger-etl sentiment`, `ledger-etl watchlists` and `ledger-etl templates ...`.

Registered on the main group by `register(main)`; heavy imports wait until a command runs.
Exit statuses are the main group's: 2 for a bad argument, name, file or unknown epic, 3 when the
API fails, 1 when the work was done but is incomplete (or the bar store is missing).
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

_DATABASE = click.option(
    "--database-url", default=None, envvar="LEDGER_DATABASE_URL", show_envvar=True,
    help="SQLAlchemy URL of the ledger (default: a SQLite file under var/).",
)  # fmt: skip


def _engine(database_url: str | None):
    from ledger_etl.ledger.db import make_engine, upgrade
    from ledger_etl.settings import database_url as configured_url

    engine = make_engine(database_url or configured_url())
    upgrade(engine)
    return engine


def _client(engine):
    from ledger_etl.sources import open_client

    return open_client(say=lambda m: click.echo(m, err=True), ledger=engine)


def _split(values: str | None) -> list[str]:
    return [v.strip() for v in (values or "").split(",") if v.strip()]


def _iso(instant: datetime | None) -> str:
    return "-" if instant is None else instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- sentiment ----------------------------------------------------------------------------------
@click.command("sentiment")
@click.option("--epics", default=None, help="Comma-separated epics (default: watchlist members).")
@click.option("--watchlist", default=None, help="The members of this stored watchlist.")
@_DATABASE
def sentiment_command(epics: str | None, watchlist: str | None, database_url: str | None) -> None:
    """Take one client-sentiment snapshot and add it to each market's time series.

    Without --epics or --watchlist the universe is every current watchlist member (the
    watchlists are read first when the ledger holds none)."""
    from ledger_etl.capital.sentiment import validate_epics
    from ledger_etl.errors import InputError
    from ledger_etl.market.sentiment import poll_sentiment
    from ledger_etl.market.watchlists import all_member_epics, poll_watchlists, watchlist_epics

    if epics is not None and watchlist is not None:
        raise click.UsageError("give --epics or --watchlist, not both")
    engine = _engine(database_url)
    chosen = validate_epics(_split(epics)) if epics is not None else None
    with _client(engine) as client:
        if chosen is None and watchlist is not None:
            chosen = watchlist_epics(engine, watchlist)
        if chosen is None:
            chosen = all_member_epics(engine)
            if not chosen:
                poll_watchlists(client, engine)
                chosen = all_member_epics(engine)
        if not chosen:
            raise InputError("no epics: give --epics, or add markets to a watchlist")
        report = poll_sentiment(client, engine, chosen)
    from ledger_etl.market.sentiment import sentiment_series

    click.echo(f"{'epic':<16} {'long %':>8} {'short %':>8}  observed")
    for point in sentiment_series(engine, chosen, report.observed_at):
        if point.observed_at == report.observed_at:
            flag = f"  [{point.flags}]" if point.flags else ""
            click.echo(
                f"{point.epic:<16} {point.long_pct:>8} {point.short_pct:>8}  "
                f"{_iso(point.observed_at)}{flag}"
            )
    write = report.write
    click.echo(
        f"run {report.run_id}: {write.inserted} new, {write.unchanged} unchanged, "
        f"{write.revised} revised; {report.problems} unusable row(s)"
    )
    if report.unknown:
        raise InputError(
            f"the broker knows no market {', '.join(repr(e) for e in report.unknown)} "
            "(404 error.not-found.epic); the others were recorded"
        )
    if report.problems:
        sys.exit(1)


# -- watchlists ---------------------------------------------------------------------------------
@click.command("watchlists")
@click.option(
    "--history",
    "history_of",
    default=None,
    metavar="NAME",
    help="Print the stored membership history of NAME (a name or id); no API call.",
)
@_DATABASE
def watchlists_command(history_of: str | None, database_url: str | None) -> None:
    """Read every watchlist, record membership changes, and print the lists."""
    from ledger_etl.market.watchlists import membership_history, poll_watchlists, stored_watchlists

    engine = _engine(database_url)
    if history_of is not None:
        for stretch in membership_history(engine, history_of):
            click.echo(
                f"{stretch.watchlist_id}\t{stretch.epic}\t"
                f"[{_iso(stretch.valid_from)}, {_iso(stretch.valid_to)})"
            )
        return
    with _client(engine) as client:
        changes = poll_watchlists(client, engine)
    if changes.stale:
        raise click.ClickException(
            "the server's clock is behind the last recorded watchlist poll; nothing recorded"
        )
    for stored in stored_watchlists(engine):
        click.echo(f"{stored.watchlist_id:<10} {stored.name:<22} {', '.join(stored.epics) or '-'}")
    for watchlist_id, epic in changes.added:
        click.echo(f"  + {watchlist_id} {epic}")
    for watchlist_id, epic in changes.removed:
        click.echo(f"  - {watchlist_id} {epic}")
    for watchlist_id, reason in changes.unreadable.items():
        click.echo(f"  ! {watchlist_id} unreadable, kept as it was: {reason}", err=True)
    click.echo(
        f"run {changes.run_id} at {_iso(changes.observed_at)}: {changes.watchlists} watchlist(s), "
        f"{len(changes.added)} added, {len(changes.removed)} removed, "
        f"{len(changes.deleted)} deleted"
    )
    if changes.unreadable:
        sys.exit(1)


def register(main: click.Group) -> None:
    """Add these commands to the `ledger-etl` group."""
    from ledger_etl.market.templates_cli import templates

    main.add_command(sentiment_command)
    main.add_command(watchlists_command)
    main.add_command(templates)
