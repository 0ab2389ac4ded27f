"""`ledger-etl prices backfill|bars` and `ledger-etl stream`: the market commands."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from ledger_etl.errors import InputError
from ledger_etl.intervals import Window
from ledger_etl.market.bars import RESOLUTIONS, read_bars, read_heikin_ashi
from ledger_etl.market.bars import bar_json as _bar_json

_DB = click.option("--database-url", default=None, envvar="LEDGER_DATABASE_URL",
                   help="SQLAlchemy URL of the ledger.")  # fmt: skip


def _engine(url: str | None):
    from ledger_etl.ledger.db import make_engine, upgrade
    from ledger_etl.settings import database_url

    engine = make_engine(url or database_url())
    upgrade(engine)
    return engine


def _instant(text: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--{name}: not an ISO date or time: {text!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _window(start: str, end: str) -> Window:
    try:
        return Window(_instant(start, "from"), _instant(end, "to"))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _resolution(value: str) -> str:
    if value not in RESOLUTIONS:
        raise InputError(f"unknown resolution {value!r}; expected one of {', '.join(RESOLUTIONS)}")
    return value


@click.group("prices")
def prices() -> None:
    """Price bars: REST backfill and reads of the bar store."""


@prices.command("backfill")
@click.option("--epic", required=True)
@click.option("--resolution", default="MINUTE", show_default=True)
@click.option("--from", "start", required=True, help="ISO UTC: first bar open time.")
@click.option("--to", "end", required=True, help="ISO UTC: end (exclusive) of bar open times.")
@_DB
def backfill_command(epic: str, resolution: str, start: str, end: str, database_url: str | None):
    """Fetch the bars of [from, to) the store lacks over REST (idempotent)."""
    from ledger_etl.market.backfill import backfill
    from ledger_etl.sources import open_client

    window, resolution = _window(start, end), _resolution(resolution)
    engine = _engine(database_url)
    with open_client(say=lambda m: click.echo(m, err=True), ledger=engine) as client:
        report = backfill(client, engine, epic, resolution, window)
    click.echo(f"{epic} {resolution}: {report.requests} requests, {report.bars} bars, "
               f"{report.changed} changed, {len(report.rejected)} rejected")  # fmt: skip


@prices.command("bars")
@click.option("--epic", required=True)
@click.option("--resolution", default="MINUTE", show_default=True)
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]),
              default="table", show_default=True)  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (required for parquet; default: standard output).")  # fmt: skip
@click.option("--bar-type", type=click.Choice(["classic", "heikin-ashi"]), default="classic",
              show_default=True, help="heikin-ashi: derived from stored bars.")  # fmt: skip
@_DB
def bars_command(epic: str, resolution: str, start: str, end: str, fmt: str, out: Path | None,
                 bar_type: str, database_url: str | None) -> None:  # fmt: skip
    """Stored bars of [from, to): exact decimal strings, `t` the UTC open time."""
    window, resolution = _window(start, end), _resolution(resolution)
    engine = _engine(database_url)
    if bar_type == "heikin-ashi":
        stored = read_heikin_ashi(engine, epic, resolution, window)
    else:
        stored = read_bars(engine, epic, resolution, window)
    emit_bars([_bar_json(r) for r in stored], fmt, out)


def emit_bars(rows: list[dict[str, Any]], fmt: str, out: Path | None) -> None:
    """Bars (as `bar_json` gives them) to `out` or standard output in `fmt`."""
    if fmt == "parquet":
        if out is None:
            raise InputError("--format parquet needs --out FILE")
        _write_parquet(rows, out)
        click.echo(f"{len(rows)} bars → {out}", err=True)
        return
    if fmt == "json":
        text = json.dumps(rows, indent=1) + "\n"
    else:
        flat = [_flat(r) for r in rows]
        header = ["epic", "resolution", "t", *(f"{s}_{k}" for s in ("bid", "ask") for k in "ohlc"),
                  "volume", "source", "final", "revision"]  # fmt: skip
        if fmt == "csv":
            import io

            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, header, lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(flat)
            text = buffer.getvalue()
        else:
            lines = ["  ".join(header[2:])]
            lines += ["  ".join(str(r[h]) for h in header[2:]) for r in flat]
            text = "\n".join(lines) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        _atomic_write(out, text.encode())


def _flat(row: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in row.items() if k not in ("bid", "ask")}
    for side in ("bid", "ask"):
        flat.update({f"{side}_{k}": row[side][k] for k in "ohlc"})
    return flat


def _write_parquet(rows: list[dict[str, Any]], out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([_flat(r) for r in rows])  # prices stay decimal strings
    with tempfile.NamedTemporaryFile(dir=out.parent or ".", delete=False, suffix=".tmp") as tmp:
        pq.write_table(table, tmp.name)
        os.fsync(tmp.fileno())
    os.replace(tmp.name, out)


def _atomic_write(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent or ".", delete=False, suffix=".tmp") as tmp:
        tmp.write(data)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, path)


@click.command("stream")
@click.option("--epics", required=True, help="Comma-separated epics.")
@click.option("--resolutions", default="MINUTE", show_default=True)
@click.option("--duration", type=float, default=None, help="Seconds to run (default: forever).")
@click.option("--health-file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("var/stream-health.json"), show_default=True,
              help="Where the status is recorded for the stream_healthy check.")  # fmt: skip
@click.option("--backfill-from", default=None, help="ISO UTC: backfill gaps from here.")
@click.option("--quotes-dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("var/quotes"), show_default=True,
              help="Raw quotes as Parquet, by date and epic, with a manifest.")  # fmt: skip
@click.option("--retention-days", type=int, default=None, help="Keep quote files this long.")
@click.option("--rotate-seconds", type=float, default=60.0, show_default=True)
@_DB
def stream_command(epics: str, resolutions: str, duration: float | None, health_file: Path,
                   backfill_from: str | None, quotes_dir: Path, retention_days: int | None,
                   rotate_seconds: float, database_url: str | None) -> None:  # fmt: skip
    """Stream quotes and bars into the store until SIGTERM/SIGINT (then flush, exit 0)."""
    from ledger_etl.market.quotes import QuoteFiles
    from ledger_etl.market.stream import BarStream, StreamInputError, StreamOptions
    from ledger_etl.sources import open_client

    try:
        options = StreamOptions(
            epics=[e.strip() for e in epics.split(",") if e.strip()],
            resolutions=[r.strip() for r in resolutions.split(",") if r.strip()],
        )
    except StreamInputError as exc:
        raise InputError(str(exc)) from None
    start = None if backfill_from is None else _instant(backfill_from, "backfill-from")
    engine = _engine(database_url)
    with open_client(say=lambda m: click.echo(m, err=True), ledger=engine) as client:
        files = QuoteFiles(quotes_dir, retention_days=retention_days)
        stream = BarStream(client, engine, options, quote_files=files, rotate_s=rotate_seconds)
        asyncio.run(_run_stream(stream, duration, start, health_file))
    _record_health(stream, health_file)
    click.echo(_status_line(stream), err=True)


async def _run_stream(stream: Any, duration: float | None, start: datetime | None,
                      health_file: Path) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stream.stop)

    async def report() -> None:
        while True:
            await asyncio.sleep(1.0)
            click.echo("\r" + _status_line(stream), nl=False, err=True)
            await asyncio.to_thread(_record_health, stream, health_file)

    reporter = asyncio.create_task(report())
    try:
        await stream.run(duration=duration, backfill_from=start)
    finally:
        reporter.cancel()
        click.echo("", err=True)


def _status_line(stream: Any) -> str:
    s = stream.status.as_dict()
    age = "-" if s["last_message_age_s"] is None else f"{s['last_message_age_s']:.1f}s"
    return (f"connections {s['connections']}  epics {len(stream.options.epics)}  "
            f"msg/s {s['messages_per_s']}  last {age}  reconnects {s['reconnects']}  "
            f"backfilled {s['backfilled_bars']}  rejected {s['rejected']}")  # fmt: skip


def _record_health(stream: Any, path: Path) -> None:
    data = stream.status.as_dict()
    data["recorded_at"] = datetime.now(UTC).isoformat()
    data["recorded_monotonic"] = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, (json.dumps(data, indent=1) + "\n").encode())


def register(main: click.Group) -> None:
    from ledger_etl.market.derive_cli import check_derived_command, derive_command

    prices.add_command(derive_command)
    prices.add_command(check_derived_command)
    main.add_command(prices)
    main.add_command(stream_command)
