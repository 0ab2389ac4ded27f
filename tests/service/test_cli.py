"""`ledger-etl users`, `audit reads`, `export` and `serve`, on both backends."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from ledger_etl.cli import main
from ledger_etl.ledger import schema as s
from ledger_etl.service.reading import read_published, stream_verified
from ledger_etl.simulator.server import free_port
from ledger_etl.statements.published import PublishedStatements
from tests.conftest import database_url_of
from tests.service.conftest import Running
from tests.service.world import FIRST, fill_ledger, publish_statements


def _run(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--database-url", url])
    return result.exit_code, result.output


def test_users_add_list_revoke(ledger_engine) -> None:
    url = database_url_of(ledger_engine)
    code, out = _run(url, "users", "add", "carol", "--accounts", "ACC-1,ACC-2", "--role", "finance")
    assert code == 0, out
    token = out.rstrip("\n").splitlines()[-1]
    assert token.startswith("lrs_") and " " not in token and len(token) > 40
    with ledger_engine.connect() as conn:
        stored = conn.execute(select(s.service_users)).one()
    assert token not in json.dumps([str(v) for v in stored])
    assert stored.accounts == ["ACC-1", "ACC-2"]
    code, out = _run(url, "users", "add", "carol", "--accounts", "all", "--role", "admin")
    assert code == 2 and "exists already" in out
    code, out = _run(url, "users", "add", "dave", "--accounts", "../x", "--role", "risk")
    assert code == 2
    code, out = _run(url, "users", "list")
    assert "carol" in out and "finance" in out and "active" in out and token not in out
    assert _run(url, "users", "revoke", "carol")[0] == 0
    assert "revoked" in _run(url, "users", "list")[1]
    assert _run(url, "users", "revoke", "carol")[0] == 2


def test_export_writes_what_the_endpoint_serves(service: Running, tmp_path: Path) -> None:
    url = database_url_of(service.world.engine)
    params = {"account": FIRST, "from": "2025-06-01", "to": "2025-06-02", "type": "TRADE,SWAP"}
    with service.client("ann") as ann:
        for fmt in ("csv", "json"):
            # JSON from the API comes in pages: one page of 1000 holds all of them here.
            query = {**params, "format": fmt, "limit": 1000}
            served = ann.get("/api/ledger/entries", params=query).content
            out = tmp_path / f"x.{fmt}"
            code, text = _run(url, "export", "--account", FIRST, "--from", "2025-06-01", "--to",
                              "2025-06-02", "--type", "TRADE,SWAP", "--format", fmt, "--out",
                              str(out))  # fmt: skip
            assert code == 0, text
            if fmt == "csv":
                assert out.read_bytes() == served
            else:
                page = json.loads(served)
                assert page["next_cursor"] is None and len(page["entries"]) > 5
                assert json.loads(out.read_bytes()) == {k: page[k] for k in ("filter", "entries")}
    code, text = _run(url, "export", "--account", "../ACC-1", "--format", "csv", "--out", "y")
    assert code == 2 and not Path("y").exists()


def test_audit_reads_lists_what_was_served(service: Running) -> None:
    with service.client("ann") as ann:
        body = ann.get(f"/api/statements/{FIRST}/2025-06/v1/statement.json").content
    code, out = _run(database_url_of(service.world.engine), "audit", "reads", "--user", "ann",
                     "--json", "--limit", "1000")  # fmt: skip
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines()]
    assert any(r["sha256"] == hashlib.sha256(body).hexdigest() for r in rows)


def test_large_files_are_streamed_and_rechecked(tmp_path: Path, monkeypatch) -> None:
    """Above the in-memory limit a file is hashed, then sent while hashed again: a file changed
    in between stops the stream before its last block."""
    publish_statements(tmp_path)
    reader = PublishedStatements(tmp_path)
    monkeypatch.setattr("ledger_etl.service.reading.IN_MEMORY_LIMIT", 10)
    monkeypatch.setattr("ledger_etl.service.reading.CHUNK", 64)
    verified = read_published(reader, FIRST, "2025-06", 1, "statement.csv")
    assert verified.body is None
    assert b"".join(stream_verified(verified)) == verified.path.read_bytes()
    again = read_published(reader, FIRST, "2025-06", 1, "statement.csv")
    os.chmod(again.path, 0o600)
    data = bytearray(again.path.read_bytes())
    data[-1] ^= 1
    again.path.write_bytes(bytes(data))
    sent = b""
    try:
        for block in stream_verified(again):
            sent += block
        raise AssertionError("a changed file was streamed to its end")
    except Exception as exc:  # TamperedFile
        assert "does not match" in str(exc)
    assert len(sent) < len(data)


@pytest.mark.slow  # a process start per backend; test_security covers the same in-process
def test_serve_command_over_http_without_tokens_in_its_output(ledger_engine, tmp_path) -> None:
    url = database_url_of(ledger_engine)
    fill_ledger(ledger_engine)
    publish_statements(tmp_path / "exports")
    token = _run(url, "users", "add", "ann", "--accounts", FIRST, "--role", "finance")[1]
    token = token.splitlines()[-1]
    port = free_port()
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_EXPORT_DIR": str(tmp_path / "exports")}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger_etl.cli", "serve", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            auth = {"Authorization": f"Bearer {token}"}
            assert httpx.get(base + "/api/accounts", headers=auth).status_code == 200
            assert httpx.get(f"{base}/api/accounts?t={token}", headers=auth).status_code == 200
            assert (
                httpx.get(base + "/api/accounts", headers={"Authorization": "Bearer x"}).status_code
                == 401
            )
            assert httpx.get(base + "/openapi.json").status_code == 200
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    output = log.read_text()
    assert "GET /api/accounts" in output
    assert token.removeprefix("lrs_") not in output
