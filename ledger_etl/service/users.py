"""Users of the read service and their bearer tokens. Only a token's sha256 is stored.

A token is 256 random bits, so a plain sha256 (no salt, no stretching) cannot be reversed and
lets a request find its user with one indexed lookup. Scope is a list of account ids, or `*`
for every account.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger_etl.errors import InputError
from ledger_etl.ledger import schema as s
from ledger_etl.statements.paths import UnsafeNameError, validate_account_id

ROLES = ("finance", "risk", "admin")
ALL_ACCOUNTS = "*"
TOKEN_PREFIX = "lrs_"  # noqa: S105 - ledger read service: lets secret scanners recognise a leaked token
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


class UserError(InputError):
    """A bad user name, role or account list, or an unknown user."""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    accounts: tuple[str, ...]  # ("*",) for every account
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def all_accounts(self) -> bool:
        return ALL_ACCOUNTS in self.accounts

    def may_read(self, account_id: str) -> bool:
        return self.all_accounts or account_id in self.accounts


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_accounts(raw: str) -> tuple[str, ...]:
    """`A,B` or `all` -> account ids (validated, deduplicated, sorted) or `("*",)`."""
    if raw.strip().lower() == "all":
        return (ALL_ACCOUNTS,)
    ids = {part.strip() for part in raw.split(",") if part.strip()}
    if not ids:
        raise UserError("--accounts needs account ids separated by commas, or 'all'")
    try:
        return tuple(sorted(validate_account_id(i) for i in ids))
    except UnsafeNameError as exc:
        raise UserError(str(exc)) from None


def add_user(engine: Engine, name: str, role: str, accounts: tuple[str, ...]) -> str:
    """Create a user and return its token, which is never stored and cannot be shown again."""
    if not _NAME.match(name):
        raise UserError(f"user name {name[:80]!r} must match {_NAME.pattern}")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, got {role[:32]!r}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = {
        "name": name,
        "role": role,
        "accounts": list(accounts),
        "token_sha256": token_hash(token),
        "created_at": datetime.now(UTC),
        "revoked_at": None,
    }
    try:
        with engine.begin() as conn:
            conn.execute(insert(s.service_users).values(**row))
    except IntegrityError:
        raise UserError(f"a user named {name!r} exists already") from None
    return token


def list_users(engine: Engine) -> list[User]:
    with engine.connect() as conn:
        rows = conn.execute(select(s.service_users).order_by(s.service_users.c.name)).all()
    return [_user(r) for r in rows]


def revoke_user(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        done = conn.execute(
            update(s.service_users)
            .where(s.service_users.c.name == name, s.service_users.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        ).rowcount
    if not done:
        raise UserError(f"no active user named {name[:80]!r}")


def user_for_token(engine: Engine, token: str) -> User | None:
    """The active user holding `token`, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
        return None
    digest = token_hash(token)
    u = s.service_users
    with engine.connect() as conn:
        row = conn.execute(select(u).where(u.c.token_sha256 == digest)).first()
    if row is None or row.revoked_at is not None:
        return None
    # The index found it; compare again in constant time so timing says nothing of the hash.
    if not secrets.compare_digest(row.token_sha256, digest):
        return None
    return _user(row)


def active_user(engine: Engine, name: str, digest_prefix: str) -> User | None:
    """The active user `name` whose token hash starts with `digest_prefix` (a session's link to
    the token it was opened with: revoking the user, or a new token, ends the session)."""
    u = s.service_users
    with engine.connect() as conn:
        row = conn.execute(select(u).where(u.c.name == name)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not secrets.compare_digest(row.token_sha256[: len(digest_prefix)], digest_prefix):
        return None
    return _user(row)


def _user(row: object) -> User:
    return User(
        name=row.name,  # type: ignore[attr-defined]
        role=row.role,  # type: ignore[attr-defined]
        accounts=tuple(row.accounts),  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        revoked_at=row.revoked_at,  # type: ignore[attr-defined]
    )
