"""`ledger-etl templates import|list|show|backfill|schema`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ledger_etl.market.extras_cli import _DATABASE, _client, _engine, _iso


@click.group("templates")
def templates() -> None:
    """Chart templates: validated, versioned by content hash, exportable, backfillable."""


@templates.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--offline", is_flag=True, help="Do not ask the broker whether the epics exist.")
@_DATABASE
def import_command(files: tuple[Path, ...], offline: bool, database_url: str | None) -> None:
    """Validate each FILE (YAML or JSON) and store it as a new version when its content changed.

    Every file is checked before any is stored: one invalid file stores nothing."""
    from ledger_etl.market.template_backfill import check_epics
    from ledger_etl.market.template_store import import_template
    from ledger_etl.market.templates import TemplateError, load_template_file

    loaded, failed = [], []
    for path in files:
        try:
            loaded.append((path, load_template_file(path)))
        except TemplateError as error:
            failed.append(error)
            click.echo(f"{error.source}: invalid", err=True)
            for problem in error.problems:
                click.echo(f"  {problem}", err=True)
    if failed:
        raise failed[0] if len(failed) == 1 else click.UsageError(
            f"{len(failed)} of {len(files)} template files are invalid; nothing was stored"
        )  # fmt: skip
    engine = _engine(database_url)
    fixed = [(p, t) for p, t in loaded if "epics" in t.document["instruments"]]
    if fixed and not offline:
        with _client(engine) as client:
            for path, template in fixed:
                check_epics(client, template.document["instruments"]["epics"],
                            f"template {path} instruments.epics")  # fmt: skip
    for path, template in loaded:
        result = import_template(engine, template, str(path))
        state = "new version" if result.created else "unchanged"
        click.echo(f"{result.name}\tv{result.version}\t{state}\t{result.sha256[:16]}")


@templates.command("list")
@_DATABASE
def list_command(database_url: str | None) -> None:
    """List the stored templates with their current version."""
    from ledger_etl.market.template_store import list_templates

    rows = list_templates(_engine(database_url))
    if not rows:
        click.echo("no chart templates yet; add one with `ledger-etl templates import FILE`")
        return
    click.echo(f"{'name':<32} {'version':>7} {'versions':>8}  {'sha256':<16}  updated")
    for row in rows:
        click.echo(
            f"{row.name:<32} {'v' + str(row.current_version):>7} {row.versions:>8}  "
            f"{row.sha256[:16]}  {_iso(row.updated_at)}"
        )


@templates.command("show")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), default=None)
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)  # fmt: skip
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Export to this file (written atomically) instead of printing.")  # fmt: skip
@_DATABASE
def show_command(
    name: str, version: int | None, fmt: str, out: Path | None, database_url: str | None
) -> None:
    """Print (or export) a template version; re-importing the export changes nothing."""
    from ledger_etl.market.template_store import get_template
    from ledger_etl.market.templates import render_template
    from ledger_etl.statements.paths import atomic_write

    stored = get_template(_engine(database_url), name, version)
    text = render_template(stored.document, fmt)
    if out is None:
        click.echo(f"# {stored.name} v{stored.version} sha256 {stored.sha256}", err=True)
        click.echo(text, nl=False)
        return
    try:
        atomic_write(out, text.encode("utf-8"))
    except OSError as error:
        raise click.ClickException(f"cannot write {out}: {error.strerror or error}") from None
    click.echo(f"{out}\t{stored.name} v{stored.version}\t{stored.sha256[:16]}")


@templates.command("schema")
def schema_command() -> None:
    """Print the published JSON Schema chart template files are checked against."""
    from ledger_etl.market.templates import template_schema

    click.echo(json.dumps(template_schema(), indent=2))


@templates.command("backfill")
@click.argument("name")
@click.option("--version", "version", type=click.IntRange(min=1), default=None)
@click.option("--now", "now_text", default=None, help="Plan as of this ISO UTC instant.")
@click.option("--plan-only", is_flag=True, help="Print the plan, fetch nothing.")
@_DATABASE
def backfill_command(
    name: str, version: int | None, now_text: str | None, plan_only: bool,
    database_url: str | None,
) -> None:  # fmt: skip
    """Backfill every bar the template's charts need: (epic, resolution, [from, to))."""
    from ledger_etl.market.template_backfill import check_epics, run_backfill, template_universe
    from ledger_etl.market.template_plan import plan_backfill
    from ledger_etl.market.template_store import get_template

    engine = _engine(database_url)
    stored = get_template(engine, name, version)
    epics = template_universe(engine, stored.document)
    with _client(engine) as client:
        now = _parse_now(now_text) if now_text else client.server_time()
        plan = plan_backfill(stored.document, epics, now)
        click.echo(f"{'epic':<16} {'resolution':<10} {'bars':>6}  [from, to)")
        for item in plan:
            click.echo(
                f"{item.epic:<16} {item.resolution:<10} {item.bars:>6}  "
                f"[{_iso(item.start)}, {_iso(item.end)})"
            )
        click.echo(f"{stored.name} v{stored.version}: {len(plan)} range(s)")
        if plan_only:
            return
        check_epics(client, epics, f"template {stored.name} v{stored.version}")
        results = run_backfill(
            client, engine, plan,
            lambda item, report: click.echo(
                f"done {item.epic} {item.resolution}: {report.bars} bar(s) in "
                f"{report.requests} request(s), {len(report.rejected)} rejected"
            ),
        )  # fmt: skip
    click.echo(f"backfilled {len(results)} range(s)")
    if not results and plan:
        sys.exit(1)


def _parse_now(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an ISO 8601 instant", param_hint="--now"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
