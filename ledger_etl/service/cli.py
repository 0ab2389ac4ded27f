"""`ledger-etl serve`, `users`, `audit reads` and `export`: the read service's commands."""

from __future__ import annotations

from pathlib import Path

import click

DATABASE_OPTION = click.option(
    "--database-url",
    default=None,
    envvar="LEDGER_DATABASE_URL",
    show_envvar=True,
    help="SQLAlchemy URL of the ledger (default: a SQLite file under var/).",
)


def _engine(database_url: str | None):
    from ledger_etl.ledger.db import make_engine, upgrade
    from ledger_etl.settings import database_url as configured_url

    engine = make_engine(database_url or configured_url())
    upgrade(engine)  # the users and audit tables must exist before the first request
    return engine


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@DATABASE_OPTION
@click.option(
    "--export-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Published statements (default: $LEDGER_EXPORT_DIR or var/exports).",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="Proxies whose X-Forwarded-For/-Proto are trusted (the client address of the audit "
    "and of the rate limit comes from them).",
)
@click.option("--secure-cookies/--no-secure-cookies", default=False, show_default=True,
              help="Mark the session cookie Secure (behind TLS).")  # fmt: skip
@click.option("--auth-failures", default=10, show_default=True, type=click.IntRange(min=1),
              help="Failed authentications per client address per minute before 429.")  # fmt: skip
def serve(
    host: str,
    port: int,
    database_url: str | None,
    export_dir: Path | None,
    forwarded_allow_ips: str,
    secure_cookies: bool,
    auth_failures: int,
) -> None:
    """Serve the read API (OpenAPI at /openapi.json) and pages. Holds no broker credentials."""
    import uvicorn

    from ledger_etl.service.app import ServiceConfig, create_app, install_log_redaction
    from ledger_etl.service.auth import FailureLimiter
    from ledger_etl.settings import export_dir as configured_export_dir
    from ledger_etl.settings import service_secret

    config = ServiceConfig(
        engine=_engine(database_url),
        export_root=export_dir or configured_export_dir(),
        limiter=FailureLimiter(limit=auth_failures),
        secure_cookies=secure_cookies,
    )
    secret = service_secret()
    if secret is not None:
        config.secret = secret
    install_log_redaction()
    click.echo(f"read service on http://{host}:{port} (exports: {config.export_root})", err=True)
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
    )


@click.group("users")
def users() -> None:
    """Users of the read service and their tokens."""


@users.command("add")
@click.argument("name")
@click.option("--accounts", required=True, help="Account ids separated by commas, or 'all'.")
@click.option("--role", required=True, type=click.Choice(["finance", "risk", "admin"]))
@DATABASE_OPTION
def users_add(name: str, accounts: str, role: str, database_url: str | None) -> None:
    """Add a user; prints its token once, alone on the last line (only its hash is stored)."""
    from ledger_etl.service.users import add_user, parse_accounts

    scope = parse_accounts(accounts)
    token = add_user(_engine(database_url), name, role, scope)
    shown = "all accounts" if scope == ("*",) else ", ".join(scope)
    click.echo(f"user {name} ({role}) can read {shown}.")
    click.echo("Its token follows; it is shown only now. Send it as 'Authorization: Bearer ...'.")
    click.echo(token)


@users.command("list")
@DATABASE_OPTION
def users_list(database_url: str | None) -> None:
    """Users, their roles, scopes and state (never their tokens)."""
    from ledger_etl.service.users import list_users

    rows = list_users(_engine(database_url))
    if not rows:
        click.echo("no users")
        return
    for u in rows:
        state = f"revoked {u.revoked_at:%Y-%m-%d %H:%M}Z" if u.revoked_at else "active"
        scope = "all" if u.all_accounts else ",".join(u.accounts)
        click.echo(f"{u.name:<24} {u.role:<8} {state:<26} {scope}")


@users.command("revoke")
@click.argument("name")
@DATABASE_OPTION
def users_revoke(name: str, database_url: str | None) -> None:
    """Revoke a user's token: its requests and page sessions are refused from now on."""
    from ledger_etl.service.users import revoke_user

    revoke_user(_engine(database_url), name)
    click.echo(f"revoked {name}")


@click.group("audit")
def audit() -> None:
    """The read service's audit."""


@audit.command("reads")
@click.option("--user", "who", default=None, help="Only this user's reads.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@DATABASE_OPTION
def audit_reads(who: str | None, limit: int, as_json: bool, database_url: str | None) -> None:
    """Reads answered by the service, newest first: who, what, when, sha256, client."""
    import json

    from ledger_etl.service.audit import list_reads

    for row in list_reads(_engine(database_url), user=who, limit=limit):
        if as_json:
            click.echo(json.dumps(row, sort_keys=True))
            continue
        click.echo(
            f"{row['at']}  {row['user'] or '-':<16} {row['client']:<15} {row['status']} "
            f"{row['outcome']:<18} {row['path']}  {row['sha256'] or ''}"
        )


@click.command("export")
@click.option("--account", required=True, help="Account id.")
@click.option("--from", "start", default=None, help="First day, YYYY-MM-DD (UTC), inclusive.")
@click.option("--to", "end", default=None, help="Last bound, YYYY-MM-DD (UTC), exclusive.")
@click.option("--type", "types", default=None, help="Transaction types, e.g. TRADE,SWAP.")
@click.option("--format", "fmt", required=True, type=click.Choice(["csv", "xlsx", "json"]))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@DATABASE_OPTION
def export(
    account: str,
    start: str | None,
    end: str | None,
    types: str | None,
    fmt: str,
    out: Path,
    database_url: str | None,
) -> None:
    """Export ledger entries, as GET /api/ledger/entries does (same filters, same writers)."""
    from ledger_etl.ledger import queries
    from ledger_etl.service.exports import write_file
    from ledger_etl.statements.paths import UnsafeNameError, validate_account_id

    try:
        flt = queries.make_filter(validate_account_id(account), start, end, types)
    except (queries.QueryError, UnsafeNameError) as exc:
        raise click.BadParameter(str(exc)) from None
    engine = _engine(database_url)
    write_file(flt, queries.stream(engine, flt), fmt, out)
    click.echo(f"wrote {out}")


COMMANDS = (serve, users, audit, export)
