"""`ledger-etl prices derive` and `ledger-etl prices check-derived`: larger bars from smaller
stored ones, and their comparison with the broker's bars."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ledger_etl.errors import InputError
from ledger_etl.market.bars import bar_json
from ledger_etl.market.cli import _DB, _engine, _resolution, _window, emit_bars
from ledger_etl.market.derive import DERIVABLE, Comparison, DeriveError, check_pair

_SOURCE = click.option("--source", "source", default="MINUTE", show_default=True,
                       help="The stored resolution to derive from.")  # fmt: skip


def _pair(source: str, target: str) -> None:
    try:
        check_pair(source, target)
    except DeriveError as exc:
        raise InputError(str(exc)) from None


@click.command("derive")
@click.option("--epic", required=True)
@click.option("--resolution", required=True, help="The resolution to derive, e.g. HOUR.")
@click.option("--from", "start", required=True, help="ISO UTC: first bar open time.")
@click.option("--to", "end", required=True, help="ISO UTC: end (exclusive) of bar open times.")
@_SOURCE
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet"]),
              default="table", show_default=True)  # fmt: skip
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="File to write (required for parquet; default: standard output).")  # fmt: skip
@_DB
def derive_command(epic: str, resolution: str, start: str, end: str, source: str, fmt: str,
                   out: Path | None, database_url: str | None) -> None:  # fmt: skip
    """Bars of RESOLUTION derived from the stored SOURCE bars; only complete bars (no gap in
    their span) are given. Source "derived"; nothing is stored."""
    from ledger_etl.market.derive import derive_bars

    window = _window(start, end)
    _pair(_resolution(source), _resolution(resolution))
    rows = derive_bars(_engine(database_url), epic, resolution, window, source)
    emit_bars([bar_json(r) for r in rows], fmt, out)


@click.command("check-derived")
@click.option("--epic", required=True)
@click.option("--from", "start", required=True)
@click.option("--to", "end", required=True)
@click.option("--resolutions", default=",".join(DERIVABLE), show_default=True,
              help="Comma-separated resolutions to compare.")  # fmt: skip
@_SOURCE
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)  # fmt: skip
@_DB
def check_derived_command(epic: str, start: str, end: str, resolutions: str, source: str,
                          fmt: str, database_url: str | None) -> None:  # fmt: skip
    """Compare derived bars with the stored broker (REST) bars wherever both exist; exit 1 on
    any mismatch."""
    from ledger_etl.market.derive import compare_derived

    window = _window(start, end)
    targets = [_resolution(r.strip()) for r in resolutions.split(",") if r.strip()]
    if not targets:
        raise InputError("--resolutions names no resolution")
    for target in targets:
        _pair(_resolution(source), target)
    engine = _engine(database_url)
    results = {t: compare_derived(engine, epic, t, window, source) for t in targets}
    total = Comparison()
    for result in results.values():
        total.add(result)
    if fmt == "json":
        click.echo(json.dumps({
            target: {"compared": r.compared, "broker_only": r.broker_only,
                     "derived_only": r.derived_only,
                     "mismatches": [m.as_dict() for m in r.mismatches]}
            for target, r in results.items()
        }, indent=1))  # fmt: skip
    else:
        for target, r in results.items():
            click.echo(f"{epic} {target} from {source}: {r.compared} compared, "
                       f"{len(r.mismatches)} mismatched field(s), {r.broker_only} broker-only, "
                       f"{r.derived_only} derived-only")  # fmt: skip
            for m in r.mismatches[:20]:
                click.echo(f"  {m.t.isoformat()} {m.field}: derived {m.derived} "
                           f"broker {m.broker}")  # fmt: skip
    if not total.matched:
        sys.exit(1)
