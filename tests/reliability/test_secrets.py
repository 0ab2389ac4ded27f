"""Secret hygiene: canary credentials and every token the simulator issues, through success, 401,
retries, exceptions and debug logging, must appear nowhere the project writes."""

from __future__ import annotations

import io
import logging
import traceback
import uuid
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import httpx
import pyarrow.parquet as pq
import pytest
from dagster._serdes import serialize_value
from sqlalchemy import Engine, select

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.errors import CapitalError
from ledger_etl.ledger import schema as s
from ledger_etl.simulator import SimulatorServer
from ledger_etl.sync import sync_range
from tests.conftest import database_url_of, make_server, make_test_engine
from tests.integration.ledger_helpers import account_ids
from tests.reliability.dagster_run import materialize_partition
from tests.reliability.harness import Measure, cli_env, run_cli, sync_args
from tests.reliability.matrix import params

START, END = datetime(2025, 12, 26, tzinfo=UTC), datetime(2025, 12, 29, tzinfo=UTC)


def _capture_tokens(server: SimulatorServer) -> set[str]:
    """Every CST and security token the simulator issues from now on."""
    issued: set[str] = set()
    store = server.simulator.sessions
    create = store.create

    def recording(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        session = create(*args, **kwargs)  # type: ignore[arg-type]
        issued.update({session.cst, session.security_token})
        return session

    store.create = recording  # type: ignore[method-assign]
    return issued


def _database_text(engine: Engine) -> str:
    parts = []
    with engine.connect() as conn:
        for table in s.metadata.sorted_tables:
            parts += [repr(tuple(row)) for row in conn.execute(select(table))]
    return "\n".join(parts)


def _files_text(root: Path) -> str:
    """Every file under `root` as text, with XLSX members unzipped and Parquet decoded."""
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        parts.append(data.decode("utf-8", "replace"))
        if path.suffix == ".xlsx":
            with zipfile.ZipFile(io.BytesIO(data)) as book:
                parts += [book.read(n).decode("utf-8", "replace") for n in book.namelist()]
        if path.suffix == ".parquet":
            parts.append(repr(pq.read_table(path).to_pylist()))
    return "\n".join(parts)


@pytest.mark.parametrize(("case", "backend"), params("secret_canaries"))
def test_canary_secrets_leak_nowhere(
    case: str,
    backend: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    tag = uuid.uuid4().hex[:12]
    key, password = f"CANARYKEY{tag}", f"CANARYPASS{tag}"
    identifier = f"canary.{tag}@example.com"
    server = make_server(
        start=date(2025, 12, 20), rate_limit_per_second=0, api_key=key, identifier=identifier,
        password=password, faults={"seed": 5, "rules": [
            {"kind": "status", "status": 503, "path": "^/history/", "every": 5},
            {"kind": "throttle", "path": "^/history/", "every": 7},
            {"kind": "drop", "path": "^/history/", "every": 11},
            {"kind": "expire_session", "path": "^/history/", "every": 9}]},
    )  # fmt: skip
    request.addfinalizer(server.stop)
    tokens = _capture_tokens(server)
    engine = make_test_engine(backend, tmp_path, request)
    exports = tmp_path / "exports"
    env = cli_env(server, database_url_of(engine), exports, api_key=key, identifier=identifier,
                  password=password)  # fmt: skip
    accounts = account_ids(server)
    logs: list[str] = []

    # Debug logging of everything, in-process: success with retries and re-logins ...
    log_file = tmp_path / "debug.log"
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    monkeypatch.setattr(root, "level", logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        with CapitalClient(server.url, key, identifier, password, rate_limit=500.0,
                           backoff_base=0.01, backoff_cap=0.05) as client:  # fmt: skip
            report = sync_range(client, engine, START, END)
            logs += [repr(client), repr(report.as_dict())]
            # ... an exception: a call the API refuses, with its message and traceback ...
            try:
                client.request("GET", "/history/transactions", params={"from": "bad"})
            except CapitalError as error:
                logs += [str(error), repr(error), traceback.format_exc()]
            else:
                pytest.fail("the bad request was accepted")
        # ... and a 401 for a wrong password (whose text is a canary too).
        wrong = f"CANARYWRONG{tag}"
        with CapitalClient(server.url, key, identifier, wrong, backoff_base=0.01) as bad:
            with pytest.raises(CapitalError) as refused:
                bad.accounts()
        logs += [str(refused.value), repr(refused.value), "".join(traceback.format_exception(
            refused.value))]  # fmt: skip
    finally:
        root.removeHandler(handler)
        handler.close()
    assert report.ok
    stats = server.simulator.stats.snapshot()

    # The CLI and Dagster: transient faults only (a session killed on its very first request
    # is refused for good, by design, and would end the run instead of exercising it).
    profile = {"rules": [{"kind": "status", "status": 503, "path": "^/history/", "every": 5},
                         {"kind": "drop", "path": "^/history/", "every": 11}]}  # fmt: skip
    httpx.put(server.url + "/_sim/faults", json=profile, timeout=30).raise_for_status()

    # The CLI: a sync, a refused login, a statement.
    runs = [run_cli(sync_args(START, END), env),
            run_cli(sync_args(START, END), {**env, "CAPITAL_PASSWORD": wrong}),
            run_cli(sync_args(START, END), {**env, "CAPITAL_API_KEY": f"CANARYWRONGKEY{tag}"}),
            run_cli(["statement", "--month", "2025-12"], env)]  # fmt: skip
    assert [r.returncode for r in runs] == [0, 3, 3, 0], [r.stderr for r in runs]  # 3: the API
    logs += [r.stdout + r.stderr for r in runs]

    # Dagster: a run configured from the environment, as deployed; its event log and metadata.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with dg.instance_for_test() as instance:
        outcome = materialize_partition(instance, "2025-12", accounts[0])
        assert outcome["success"]
        dagster_text = [serialize_value(instance.get_run_by_id(outcome["run_id"]))]
        dagster_text += [serialize_value(e) for e in instance.all_logs(outcome["run_id"])]
    logs += [repr(outcome)]
    captured = capfd.readouterr()
    logs += [captured.out, captured.err, log_file.read_text(encoding="utf-8")]
    logs += [r.getMessage() + repr(r.args) for r in caplog.records]
    assert caplog.records and log_file.stat().st_size > 0

    assert tokens, "no session was issued"
    needles = {key, password, wrong, f"CANARYWRONGKEY{tag}", *tokens}
    places = {
        "logs": "\n".join(logs),
        "dagster event log and run": "\n".join(dagster_text),
        "database": _database_text(engine),
        "exports and audit files": _files_text(tmp_path),
    }
    hits = {where: sorted(n[:12] for n in needles if n in text) for where, text in places.items()}
    assert hits == {where: [] for where in places}, hits
    Measure(case, backend, server).done(
        canaries=len(needles), tokens=len(tokens), canary_hits=0,
        retries=stats.get("faults_fired", 0), relogins=max(stats.get("logins", 1) - 1, 0),
        bytes_swept=sum(len(t) for t in places.values()),
    )  # fmt: skip
