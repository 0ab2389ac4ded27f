"""A server that writes the request back into its error answers (the simulator's `echo` fault
rule, over real HTTP): no credential or session token may come out of the client through that
text, in any spelling, in a fetch-log row, a log line, an exception or the CLI's output."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select

import ledger_etl.simulator.app as simulator_app
from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.errors import CapitalError
from ledger_etl.cli import EXIT_API
from ledger_etl.ledger import schema as s
from ledger_etl.simulator import SimulatorServer
from ledger_etl.sync import sync_range
from tests.conftest import database_url_of, make_server, make_test_engine
from tests.reliability.harness import cli_env, run_cli, sync_args
from tests.unit.test_capital_secrets import spellings, texts_of

START, END = datetime(2025, 12, 27, tzinfo=UTC), datetime(2025, 12, 28, tzinfo=UTC)
HISTORY_PARAMS = {"from": f"{START:%Y-%m-%dT%H:%M:%S}", "to": f"{END:%Y-%m-%dT%H:%M:%S}"}
MARKER = "error.echo.canary"  # the echo rules' errorCode: shows that the echoed text got through


@dataclass(frozen=True)
class Echo:
    """One way of being echoed at, where the echo must then show up, and masked how (so it is
    the masking that keeps the secrets out, not the cut at 500 characters)."""

    name: str
    rule: dict[str, Any]
    shows_in: frozenset[str]  # of "fetch_log", "logs", "error", "cli"
    masked_as: tuple[str, ...]
    encrypted: bool = False


TOKENS_MASKED = ("cst=***", "x-security-token=***")  # percent-encoded spelling, masked
LOGIN_MASKED = ('"identifier":"***","password":"***"', "password=***", "x-cap-api-key=***")
CASES = [
    Echo("history_500_retried", {"status": 500, "path": "^/history/"},
         frozenset({"fetch_log", "logs", "error"}), TOKENS_MASKED),
    Echo("history_400", {"status": 400, "path": "^/history/"}, frozenset({"fetch_log", "error"}),
         TOKENS_MASKED),
    Echo("account_switch_500", {"status": 500, "method": "PUT", "path": "^/session$"},
         frozenset({"logs", "error", "cli"}), ('{"accountId":"', *TOKENS_MASKED)),
    Echo("login_401", {"status": 401, "method": "POST", "path": "^/session$"},
         frozenset({"error", "cli"}), LOGIN_MASKED),
    Echo("login_401_encrypted", {"status": 401, "method": "POST", "path": "^/session$"},
         frozenset({"error", "cli"}), LOGIN_MASKED, encrypted=True),
]  # fmt: skip


@dataclass
class Hostile:
    server: SimulatorServer
    api_key: str
    identifier: str
    password: str
    sent: list[tuple[dict[str, str], bytes]]  # each request the server echoed

    def needles(self) -> dict[str, str]:
        """Every spelling of every secret the client configured or sent in an echoed request:
        credentials, the (encrypted) password of each login, each CST and security token."""
        secrets = {"api key": self.api_key, "identifier": self.identifier,
                   "password": self.password}  # fmt: skip
        for number, (headers, body) in enumerate(self.sent, 1):
            for name in ("cst", "x-security-token", "x-cap-api-key"):
                if headers.get(name):
                    secrets[f"{name} of request {number}"] = headers[name]
            fields = json.loads(body) if body.strip() else {}
            for name in ("identifier", "password"):
                if isinstance(fields.get(name), str):
                    secrets[f"{name} of request {number}"] = fields[name]
        return {
            f"{what} ({how})": spelling
            for what, secret in secrets.items()
            for how, spelling in spellings(secret).items()
        }

    def leaks(self, places: dict[str, str], case: Echo) -> dict[str, list[str]]:
        assert self.sent, "the echo rule never fired"
        for place in case.shows_in & set(places):
            for expected in (MARKER, *case.masked_as):
                assert expected in places[place], f"{expected!r} not in {place}"
        needles = self.needles()
        return {where: sorted(n for n, v in needles.items() if v in text)
                for where, text in places.items()}  # fmt: skip


def _hostile(
    case: Echo, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Hostile:
    tag = uuid.uuid4().hex[:10]
    key, identifier, password = f"ECHOKEY{tag}", f"echo.{tag}@example.com", f'pa ss"wörd/+&={tag}'
    rule = {"kind": "echo", "error_code": MARKER, **case.rule}
    server = make_server(
        start=date(2025, 12, 20), rate_limit_per_second=0, api_key=key, identifier=identifier,
        password=password, faults={"rules": [rule]},
    )  # fmt: skip
    request.addfinalizer(server.stop)
    sent: list[tuple[dict[str, str], bytes]] = []
    echo = simulator_app.echo_text

    def recording(method: str, target: str, headers: dict[str, str], body: bytes) -> str:
        sent.append((dict(headers), body))
        return echo(method, target, headers, body)

    monkeypatch.setattr(simulator_app, "echo_text", recording)  # the server runs in this process
    return Hostile(server, key, identifier, password, sent)


def _fetch_log_errors(engine: Engine) -> str:
    with engine.connect() as conn:
        return "\n".join(str(e) for e in conn.execute(select(s.fetch_log.c.error)).scalars())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_echoed_secrets_stay_out_of_fetch_log_logs_and_errors(
    case: Echo,
    ledger_engine: Engine,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = _hostile(case, request, monkeypatch)
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with CapitalClient(
        hostile.server.url, hostile.api_key, hostile.identifier, hostile.password,
        encrypted_password=case.encrypted, rate_limit=500.0, backoff_base=0.01, backoff_cap=0.05,
    ) as client:  # fmt: skip
        try:
            sync_range(client, ledger_engine, START, END)
        except CapitalError as error:
            errors.append(error)
        try:  # a history request outside a sync: its exception reaches the caller
            client.request("GET", "/history/transactions", params=HISTORY_PARAMS)
        except CapitalError as error:
            errors.append(error)
    places = {
        "fetch_log": _fetch_log_errors(ledger_engine),
        "logs": "\n".join(r.getMessage() + repr(r.args) for r in caplog.records),
        "error": "\n".join(text for error in errors for text in texts_of(error)),
    }
    assert hostile.leaks(places, case) == {where: [] for where in places}


@pytest.mark.parametrize("case", [c for c in CASES if "cli" in c.shows_in], ids=lambda c: c.name)
def test_echoed_secrets_stay_out_of_the_cli_output(
    case: Echo, tmp_path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = _hostile(case, request, monkeypatch)
    engine = make_test_engine("sqlite", tmp_path, request)
    env = cli_env(
        hostile.server, database_url_of(engine), api_key=hostile.api_key,
        identifier=hostile.identifier, password=hostile.password,
        CAPITAL_ENCRYPTED_PASSWORD=str(case.encrypted).lower(),
    )  # fmt: skip
    done = run_cli(sync_args(START, END), env)
    assert done.returncode == EXIT_API, (done.stdout, done.stderr)
    places = {"stdout": done.stdout, "stderr": done.stderr}
    for expected in (MARKER, *case.masked_as):  # the CLI did show the server's error, masked
        assert expected in done.stderr, expected
    assert hostile.leaks(places, case) == {where: [] for where in places}
