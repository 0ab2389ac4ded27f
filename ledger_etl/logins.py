"""Several Capital.com logins, listed in a credentials file (`LEDGER_CREDENTIALS_FILE`).

YAML (`.yaml`/`.yml`) or TOML (`.toml`), one entry per login:

```yaml
logins:
  - name: acme                      # letters, digits, '-', '_'; partitions are `acme/<account>`
    api_url: https://api-capital.backend-capital.com
    api_key: ${ACME_API_KEY}        # secrets: environment-variable references only
    identifier: ops@acme.example    # a literal or a reference
    password: ${ACME_PASSWORD}
    rate_limit: 10                  # optional, requests per second (default CAPITAL_RATE_LIMIT)
    encrypted_password: false       # optional
```

`api_key_env: ACME_API_KEY` (and `password_env`, `identifier_env`) say the same as `${...}`.
A file holding a literal API key or password is refused: the error names the login and the
field, never the value. References are resolved through `settings.secret_reference`, when a
login is used, so a missing variable fails that login only.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger_etl.settings import (
    CapitalSettings,
    SettingsError,
    client_limits,
    credentials_file,
    secret_reference,
)

# The separator of `<login>/<accountId>` partition keys: a login name never holds it.
LOGIN_SEPARATOR = "/"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_FIELDS = ("api_key", "password")
TEXT_FIELDS = ("api_key", "identifier", "password")
KNOWN = {"name", "api_url", "rate_limit", "encrypted_password"} | {
    f"{f}{suffix}" for f in TEXT_FIELDS for suffix in ("", "_env")
}


class CredentialsError(SettingsError):
    """The credentials file is unreadable or unsafe; the message names the login and field."""


@dataclass(frozen=True)
class Login:
    """One login of the file: its values, secrets still as variable names."""

    name: str
    api_url: str
    api_key_env: str
    identifier: str | None  # a literal identifier, or None when `identifier_env` gives it
    identifier_env: str | None
    password_env: str
    rate_limit: float | None = None
    encrypted_password: bool = False

    def settings(self, env: dict[str, str] | None = None) -> CapitalSettings:
        """The login's settings with its references resolved (refused when one is unset)."""
        rate, split = client_limits(env)
        values = {}
        for field, variable in (
            ("api_key", self.api_key_env),
            ("password", self.password_env),
            ("identifier", self.identifier_env),
        ):
            if variable is None:
                continue
            value = secret_reference(variable, env)
            if value is None:
                raise CredentialsError(
                    f"login {self.name!r}: {field} refers to the environment variable "
                    f"{variable}, which is not set"
                )
            values[field] = value
        return CapitalSettings(
            api_url=self.api_url,
            api_key=values["api_key"].strip(),
            identifier=(values.get("identifier") or self.identifier or "").strip(),
            password=values["password"],
            encrypted_password=self.encrypted_password,
            rate_limit=self.rate_limit or rate,
            split_threshold=split,
        )


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise CredentialsError(f"cannot read the credentials file {path}: {error}") from None
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
    except Exception as error:  # the parser's message says where
        raise CredentialsError(f"{path} is not valid {path.suffix[1:].upper()}: {error}") from None
    raise CredentialsError(f"{path}: the credentials file must end in .yaml, .yml or .toml")


def _reference(
    name: str, entry: dict[str, Any], field: str, secret: bool
) -> tuple[str | None, str | None]:
    """(literal, variable) of `field`; a secret given as a literal is refused."""
    given = entry.get(field)
    variable = entry.get(f"{field}_env")
    if given is not None and variable is not None:
        raise CredentialsError(f"login {name!r}: give {field} or {field}_env, not both")
    if variable is not None:
        if not isinstance(variable, str) or not _VARIABLE.match(variable):
            raise CredentialsError(f"login {name!r}: {field}_env must name an environment variable")
        return None, variable
    if given is None:
        raise CredentialsError(f"login {name!r}: {field} is missing")
    if not isinstance(given, str):
        raise CredentialsError(f"login {name!r}: {field} must be text")
    match = _REFERENCE.match(given.strip())
    if match:
        return None, match.group(1)
    if secret:
        raise CredentialsError(
            f"login {name!r}: {field} holds a literal value; a credentials file may only refer "
            f"to secrets, e.g. {field}: ${{{name.upper().replace('-', '_')}_{field.upper()}}} "
            "(the file was refused; nothing was read from it)"
        )
    return given.strip(), None


def parse_logins(data: Any, where: str = "credentials file") -> list[Login]:
    """The logins of a parsed file (a mapping with a `logins` list)."""
    if not isinstance(data, dict) or not isinstance(data.get("logins"), list):
        raise CredentialsError(f"{where}: expected a `logins` list")
    logins: list[Login] = []
    for position, entry in enumerate(data["logins"], 1):
        if not isinstance(entry, dict):
            raise CredentialsError(f"{where}: login #{position} must be a mapping")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise CredentialsError(
                f"{where}: login #{position} needs a name of letters, digits, '-' and '_'"
            )
        unknown = sorted(set(entry) - KNOWN)
        if unknown:
            raise CredentialsError(f"login {name!r}: unknown keys {unknown}")
        if any(login.name == name for login in logins):
            raise CredentialsError(f"{where}: the login name {name!r} is used twice")
        url = entry.get("api_url")
        if not isinstance(url, str) or not url.strip().startswith(("http://", "https://")):
            raise CredentialsError(f"login {name!r}: api_url must start with http:// or https://")
        _, key_env = _reference(name, entry, "api_key", secret=True)
        _, password_env = _reference(name, entry, "password", secret=True)
        identifier, identifier_env = _reference(name, entry, "identifier", secret=False)
        rate = entry.get("rate_limit")
        number = isinstance(rate, int | float) and not isinstance(rate, bool)
        if rate is not None and not (number and rate > 0):
            raise CredentialsError(f"login {name!r}: rate_limit must be a number above zero")
        encrypted = entry.get("encrypted_password", False)
        if not isinstance(encrypted, bool):
            raise CredentialsError(f"login {name!r}: encrypted_password must be true or false")
        logins.append(
            Login(
                name=name,
                api_url=url.strip().rstrip("/"),
                api_key_env=key_env or "",
                identifier=identifier,
                identifier_env=identifier_env,
                password_env=password_env or "",
                rate_limit=float(rate) if rate is not None else None,
                encrypted_password=encrypted,
            )
        )
    if not logins:
        raise CredentialsError(f"{where}: the `logins` list is empty")
    return logins


def load_logins(path: Path) -> list[Login]:
    """The logins of the file at `path` (refused as a whole when any entry is unsafe)."""
    return parse_logins(_read(path), str(path))


def configured_logins(env: dict[str, str] | None = None) -> list[Login] | None:
    """The logins of `LEDGER_CREDENTIALS_FILE`, or None when it is unset (one login)."""
    path = credentials_file(env)
    return None if path is None else load_logins(path)


def find_login(logins: list[Login], name: str) -> Login:
    for login in logins:
        if login.name == name:
            return login
    raise CredentialsError(f"no login named {name!r} in the credentials file")


def account_key(login: str | None, account_id: str) -> str:
    """The account partition key: `<login>/<accountId>`, or the bare id with one login."""
    return account_id if login is None else f"{login}{LOGIN_SEPARATOR}{account_id}"


def split_account_key(key: str) -> tuple[str | None, str]:
    """(login or None, account id) of an account partition key."""
    login, sep, account = key.rpartition(LOGIN_SEPARATOR)
    return (login, account) if sep else (None, key)
