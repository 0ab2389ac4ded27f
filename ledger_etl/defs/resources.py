"""Resources: configuration in, clients and engines out; opened and closed here.

Every field is optional: left empty, it is read from the environment when a run uses it
(`CAPITAL_*`, `LEDGER_*`; see README), never when the code location loads. With no
`CAPITAL_API_URL`, the Capital.com resource starts the bundled simulator in-process and logs so.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import dagster as dg
from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.ledger.db import make_engine
from ledger_etl.settings import capital_settings, database_url, export_dir
from ledger_etl.sources import open_client

_engines: dict[str, Engine] = {}


class CapitalApiResource(dg.ConfigurableResource):
    """The Capital.com API (or the bundled simulator when no URL is configured)."""

    api_url: str | None = None
    api_key: str | None = None
    identifier: str | None = None
    password: str | None = None
    encrypted_password: bool | None = None
    rate_limit: float | None = None
    split_threshold: int | None = None

    @contextmanager
    def open_client(
        self, log: logging.Logger | dg.DagsterLogManager | None = None
    ) -> Iterator[CapitalClient]:
        settings = capital_settings()
        overrides = {k: v for k, v in {
            "api_url": self.api_url, "api_key": self.api_key, "identifier": self.identifier,
            "password": self.password, "encrypted_password": self.encrypted_password,
            "rate_limit": self.rate_limit,
            "split_threshold": self.split_threshold}.items() if v is not None}  # fmt: skip
        settings = replace(settings, **overrides)
        say = log.info if log is not None else logging.getLogger(__name__).info
        with open_client(settings, say=say) as client:
            yield client


class LedgerResource(dg.ConfigurableResource):
    """The ledger database and the statements folder."""

    database_url: str | None = None
    export_dir: str | None = None

    def engine(self) -> Engine:
        url = self.database_url or database_url()
        if url not in _engines:
            _engines[url] = make_engine(url)
        return _engines[url]

    def exports(self) -> Path:
        return Path(self.export_dir) if self.export_dir else export_dir()
