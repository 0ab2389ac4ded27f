"""Resources: configuration in, clients and engines out; opened and closed here.

Every field has a real default, so the Dagster UI shows what a run will use:
`resources_from_environment()` gives each field a `dg.EnvVar` where its variable is set when the
code location loads (the UI then shows the variable's name, never its value) and the default
where it is not. An empty `api_url` means the bundled simulator, started for each run.

The fields are strings, as environment variables are; `capital_settings` and friends validate
them when a run opens a client, with the same messages as the command line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field
from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.ledger.db import make_engine
from ledger_etl.logins import Login, find_login, load_logins
from ledger_etl.settings import (
    DEFAULT_SPLIT_THRESHOLD,
    SIMULATOR_API_KEY,
    SIMULATOR_IDENTIFIER,
    SIMULATOR_PASSWORD,
    CapitalSettings,
    capital_settings,
    configured_variables,
    database_url,
    export_dir,
)
from ledger_etl.sources import open_client

_engines: dict[str, Engine] = {}

# resource field -> the environment variable that configures it (see settings.py)
CAPITAL_VARIABLES = {
    "api_url": "CAPITAL_API_URL",
    "api_key": "CAPITAL_API_KEY",
    "identifier": "CAPITAL_IDENTIFIER",
    "password": "CAPITAL_PASSWORD",
    "encrypted_password": "CAPITAL_ENCRYPTED_PASSWORD",
    "rate_limit": "CAPITAL_RATE_LIMIT",
    "split_threshold": "CAPITAL_SPLIT_THRESHOLD",
    "credentials_file": "LEDGER_CREDENTIALS_FILE",
}
LEDGER_VARIABLES = {"database_url": "LEDGER_DATABASE_URL", "export_dir": "LEDGER_EXPORT_DIR"}


class CapitalApiResource(dg.ConfigurableResource):
    """The Capital.com API (or the bundled simulator when no URL is configured); with a
    credentials file, each of its logins (`open_client(login=...)`)."""

    api_url: str = Field("", description="CAPITAL_API_URL; empty: the bundled simulator")
    api_key: str = Field(SIMULATOR_API_KEY, description="CAPITAL_API_KEY")
    identifier: str = Field(SIMULATOR_IDENTIFIER, description="CAPITAL_IDENTIFIER")
    password: str = Field(SIMULATOR_PASSWORD, description="CAPITAL_PASSWORD")
    encrypted_password: str = Field("false", description="CAPITAL_ENCRYPTED_PASSWORD")
    rate_limit: str = Field("10", description="CAPITAL_RATE_LIMIT, requests per second")
    split_threshold: str = Field(
        str(DEFAULT_SPLIT_THRESHOLD), description="CAPITAL_SPLIT_THRESHOLD, rows"
    )
    credentials_file: str = Field(
        "", description="LEDGER_CREDENTIALS_FILE; empty: one login, the fields above"
    )

    def _values(self) -> dict[str, str]:
        return {name: str(getattr(self, attr)) for attr, name in CAPITAL_VARIABLES.items()}

    def settings(self, login: str | None = None) -> CapitalSettings:
        """The validated settings of `login` (of the credentials file), or of the one login
        these fields give (a `SettingsError` names the variable, or the login and field)."""
        if login is None:
            return capital_settings(self._values())
        # The file names variables; their values are read (by settings.py) from the process.
        return find_login(self.logins() or [], login).settings()

    def logins(self) -> list[Login] | None:
        """The credentials file's logins, or None with one login (no file)."""
        path = self.credentials_file.strip()
        return load_logins(Path(path).expanduser()) if path else None

    @contextmanager
    def open_client(
        self,
        log: logging.Logger | dg.DagsterLogManager | None = None,
        ledger: Engine | None = None,
        login: str | None = None,
    ) -> Iterator[CapitalClient]:
        """A client of `login` (None: the one login); with no URL, of the bundled simulator
        serving `ledger`'s world. Each login's client paces itself by its own API key."""
        say = log.info if log is not None else logging.getLogger(__name__).info
        with open_client(self.settings(login), say=say, ledger=ledger) as client:
            yield client


class LedgerResource(dg.ConfigurableResource):
    """The ledger database and the statements folder."""

    database_url: str = Field(
        default_factory=lambda: database_url({}), description="LEDGER_DATABASE_URL"
    )
    export_dir: str = Field(
        default_factory=lambda: str(export_dir({})), description="LEDGER_EXPORT_DIR"
    )

    def engine(self) -> Engine:
        url = self.database_url
        if url not in _engines:
            _engines[url] = make_engine(url)
        return _engines[url]

    def exports(self) -> Path:
        return Path(self.export_dir).expanduser()


def resources_from_environment() -> dict[str, Any]:
    """The code location's resources: `dg.EnvVar` for each variable set now, defaults else."""
    configured = configured_variables()
    if "CAPITAL_API_URL" in configured:
        # The real API has no default credentials: an unset one fails the run at launch.
        configured |= {"CAPITAL_API_KEY", "CAPITAL_IDENTIFIER", "CAPITAL_PASSWORD"}
    capital = {a: dg.EnvVar(n) for a, n in CAPITAL_VARIABLES.items() if n in configured}
    # The ledger's defaults depend on where the project lives: given explicitly, the UI shows them.
    ledger: dict[str, Any] = {"database_url": database_url({}), "export_dir": str(export_dir({}))}
    ledger.update({a: dg.EnvVar(n) for a, n in LEDGER_VARIABLES.items() if n in configured})
    return {"capital": CapitalApiResource(**capital), "ledger": LedgerResource(**ledger)}


def resources_from_settings(capital: CapitalSettings | None = None) -> dict[str, Any]:
    """Resources holding the values the environment gives now (validated), for code that runs
    jobs itself (the demo) rather than through a code location; `capital` overrides the API."""
    chosen = capital or capital_settings()
    return {
        "capital": CapitalApiResource(
            api_url=chosen.api_url or "",
            api_key=chosen.api_key,
            identifier=chosen.identifier,
            password=chosen.password,
            encrypted_password=str(chosen.encrypted_password).lower(),
            rate_limit=repr(chosen.rate_limit),
            split_threshold=str(chosen.split_threshold),
        ),
        "ledger": LedgerResource(database_url=database_url(), export_dir=str(export_dir())),
    }
