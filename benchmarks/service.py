"""The read service over real HTTP on loopback, each server in its own process.

1. Statement download throughput against Starlette's plain `FileResponse` of the same file, in
   the same run (the service hashes every file against its manifest before sending it, and
   writes an audit row). Target: at least 0.8x the plain file server.
2. p50/p99 latency of `GET /api/statements` with 50 concurrent clients.
3. A 1,000,000-entry ledger streamed as CSV from `GET /api/ledger/entries`: the server's peak
   RSS (VmHWM) must stay under 200 MB.

    python -m benchmarks service                      # all three
    python -m benchmarks service --entries 200000 --skip-download
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx

from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.service.users import add_user
from ledger_etl.simulator.server import free_port
from ledger_etl.statements.build import build_statement
from ledger_etl.statements.export import publish_built
from ledger_etl.statements.model import LedgerEntry, StatementInputs
from ledger_etl.statements.paths import parse_month

CLIENTS = 50
RSS_TARGET_MB = 200
# Seconds an idle kept-alive connection stays open (uvicorn's default is 5): on a loaded machine
# a client can take longer than that to send its next request, and a connection the server
# closes just as the client reuses it fails the run with a ReadError.
KEEP_ALIVE = 120


def _month_inputs(account: str, month: str, entries: int) -> StatementInputs:
    period = parse_month(month)
    step = (period.end - period.start) / (entries + 1)
    rows = tuple(
        LedgerEntry(
            reference=f"{account}-{month}-{i:07d}",
            posted_at=(period.start + step * (i + 1)).replace(microsecond=0),
            transaction_type=("TRADE", "SWAP", "TRADE_COMMISSION")[i % 3],
            instrument="EURUSD",
            amount=Decimal(f"{(i % 23) - 11}.{i % 97:02d}"),
            currency="USD",
            status="PROCESSED",
            deal_id=None,
            note=None,
            ledger_account="4000",
            flags="",
            row_sha256=f"{i:064x}",
            last_run_id="bench",
        )
        for i in range(entries)
    )
    total = sum((r.amount for r in rows), Decimal(0))
    return StatementInputs(
        account_id=account, account_name=None, currency="USD", period=period,
        balance_before=Decimal(0), balance_before_previous=Decimal(0),
        previous_movement=Decimal(0), balance_at_end=total, entries=rows, activities=(),
        fetches=(), gaps=(), observation=None, observation_window=None,
        ledger_account_names={"4000": "Realised trading P&L"},
    )  # fmt: skip


# -- servers, each in its own process ------------------------------------------------------------
def _run_service(db_url: str, export_root: str, port: int) -> None:
    import logging

    import uvicorn

    from ledger_etl.service.app import ServiceConfig, create_app
    from ledger_etl.service.auth import FailureLimiter

    logging.disable(logging.INFO)
    config = ServiceConfig(make_engine(db_url), Path(export_root), limiter=FailureLimiter(10**6))
    uvicorn.run(create_app(config), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, timeout_keep_alive=KEEP_ALIVE)  # fmt: skip


def _run_file_server(path: str, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import FileResponse
    from starlette.routing import Route

    async def file(_request: object) -> FileResponse:
        return FileResponse(path)

    app = Starlette(routes=[Route("/file", file)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                timeout_keep_alive=KEEP_ALIVE)  # fmt: skip


def _start(target: object, *args: object) -> tuple[multiprocessing.Process, str]:
    port = free_port()
    proc = multiprocessing.get_context("fork").Process(target=target, args=(*args, port))
    proc.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/healthz", timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("a benchmark server did not start")


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _stop(proc: multiprocessing.Process) -> None:
    proc.terminate()
    proc.join(10)


# -- 1. downloads ---------------------------------------------------------------------------
def bench_download(db_url: str, root: Path, token: str, rounds: int, entries: int) -> None:
    publish_built(build_statement(_month_inputs("BIG", "2025-06", entries)), root,
                  run_id="bench", formats=("json", "csv"))  # fmt: skip
    path = root / "BIG" / "2025-06" / "v1" / "statement.csv"
    size = path.stat().st_size
    want = hashlib.sha256(path.read_bytes()).hexdigest()
    service, service_url = _start(_run_service, db_url, str(root))
    plain, plain_url = _start(_run_file_server, str(path))
    try:
        auth = {"Authorization": f"Bearer {token}"}
        ours = f"{service_url}/api/statements/BIG/2025-06/v1/statement.csv"
        with httpx.Client(timeout=60) as http:
            assert hashlib.sha256(http.get(ours, headers=auth).content).hexdigest() == want
            assert hashlib.sha256(http.get(plain_url + "/file").content).hexdigest() == want
            # Interleaved, one request to each in turn: a shared machine's load then weighs
            # on both alike. Throughput from the median request time of each.
            times: dict[str, list[float]] = {"FileResponse": [], "service": []}
            for _ in range(rounds):
                for name, url, headers in (("FileResponse", plain_url + "/file", {}),
                                           ("service", ours, auth)):  # fmt: skip
                    started = time.perf_counter()
                    http.get(url, headers=headers).raise_for_status()
                    times[name].append(time.perf_counter() - started)
            figures = {name: size / statistics.median(t) / 1e6 for name, t in times.items()}
    finally:
        _stop(service)
        _stop(plain)
    ratio = figures["service"] / figures["FileResponse"]
    print(f"download of a {size / 1e6:.1f} MB statement.csv, {rounds} requests to each server, "
          "interleaved (MB/s at the median request time):")  # fmt: skip
    print(f"  Starlette FileResponse  {figures['FileResponse']:8.1f} MB/s")
    print(f"  read service            {figures['service']:8.1f} MB/s  (sha256 verified, audited)")
    print(f"  ratio {ratio:.2f}x (target >= 0.80x): {'OK' if ratio >= 0.8 else 'BELOW TARGET'}")


# -- 2. listing latency -----------------------------------------------------------------------
def bench_listing(db_url: str, root: Path, token: str, months: int, per_client: int) -> None:
    for account in ("L-1", "L-2", "L-3"):
        for m in range(months):
            label = f"{2024 + m // 12}-{m % 12 + 1:02d}"
            built = build_statement(replace(_month_inputs(account, label, 50)))
            publish_built(built, root, run_id="bench", formats=("json", "csv"))
    service, url = _start(_run_service, db_url, str(root))
    timings: list[float] = []

    async def client(http: httpx.AsyncClient) -> None:
        for _ in range(per_client):
            started = time.perf_counter()
            response = await http.get("/api/statements")
            timings.append(time.perf_counter() - started)
            response.raise_for_status()

    async def run() -> float:
        limits = httpx.Limits(max_connections=CLIENTS)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits,
                                     timeout=120) as http:  # fmt: skip
            started = time.perf_counter()
            await asyncio.gather(*(client(http) for _ in range(CLIENTS)))
            return time.perf_counter() - started

    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as http:
            alone = []
            for _ in range(20):  # one client at a time: the cost of one listing
                started = time.perf_counter()
                http.get("/api/statements").raise_for_status()
                alone.append(time.perf_counter() - started)
        elapsed = asyncio.run(run())
    finally:
        _stop(service)
    print(f"GET /api/statements alone: p50 {statistics.median(alone) * 1000:.1f} ms")
    timings.sort()
    p50 = statistics.median(timings) * 1000
    p99 = timings[int(len(timings) * 0.99) - 1] * 1000
    count = 3 * months
    print(f"GET /api/statements ({count} account-months, +1 after the download benchmark), "
          f"{CLIENTS} concurrent clients, "
          f"{len(timings)} requests: p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
          f"{len(timings) / elapsed:.0f} requests/s")  # fmt: skip


# -- 3. a 1,000,000-entry CSV export ------------------------------------------------------------
def fill_sqlite(path: Path, account: str, entries: int) -> None:
    """Bulk rows straight through sqlite3 (amounts as the decimal TEXT the schema stores)."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    con = sqlite3.connect(path)
    rows = (
        (account, f"R{i:09d}", (start + timedelta(seconds=17 * i)).strftime("%Y-%m-%d %H:%M:%S"),
         ("TRADE", "SWAP", "TRADE_COMMISSION")[i % 3], "EURUSD", f"{(i % 23) - 11}.{i % 97:02d}",
         "USD", "USD", "PROCESSED", None, None, "4000", "", f"{i:064x}", 1, 1)
        for i in range(entries)
    )  # fmt: skip
    with con:
        con.executemany(
            "INSERT INTO ledger_entries (account_id, reference, posted_at, transaction_type,"
            " instrument, amount, currency, currency_raw, status, deal_id, note, ledger_account,"
            " flags, row_sha256, first_run_key, last_run_key)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    con.close()


def bench_export(db_file: Path, db_url: str, root: Path, token: str, entries: int) -> None:
    started = time.perf_counter()
    fill_sqlite(db_file, "BULK", entries)
    print(f"filled {entries:,} ledger entries in {time.perf_counter() - started:.1f} s")
    service, url = _start(_run_service, db_url, str(root))
    try:
        baseline = _peak_rss_mb(service.pid)
        digest = hashlib.sha256()
        size = lines = 0
        started = time.perf_counter()
        with httpx.stream("GET", f"{url}/api/ledger/entries", timeout=600,
                          params={"account": "BULK", "format": "csv"},
                          headers={"Authorization": f"Bearer {token}"}) as response:  # fmt: skip
            response.raise_for_status()
            for chunk in response.iter_bytes():
                digest.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
        elapsed = time.perf_counter() - started
        peak = _peak_rss_mb(service.pid)
    finally:
        _stop(service)
    print(f"CSV export of {lines - 1:,} entries: {size / 1e6:.0f} MB in {elapsed:.1f} s "
          f"({(lines - 1) / elapsed:,.0f} rows/s), sha256 {digest.hexdigest()[:16]}…")  # fmt: skip
    verdict = "OK" if peak < RSS_TARGET_MB else "ABOVE TARGET"
    print(f"  server peak RSS {peak:.0f} MB (at start {baseline:.0f} MB; target < "
          f"{RSS_TARGET_MB} MB): {verdict}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks service")
    parser.add_argument("--entries", type=int, default=1_000_000, help="rows of the CSV export")
    parser.add_argument("--statement-entries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=200, help="downloads per server")
    parser.add_argument("--months", type=int, default=12, help="months per listed account")
    parser.add_argument("--per-client", type=int, default=20, help="listings per client")
    parser.add_argument("--skip-download", action="store_true")
    parser.add_argument("--skip-listing", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args(argv or [])
    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        db_file = Path(tmp) / "ledger.sqlite"
        db_url = f"sqlite:///{db_file}"
        engine = make_engine(db_url)
        upgrade(engine)
        token = add_user(engine, "bench", "admin", ("*",))
        engine.dispose()
        root = Path(tmp) / "exports"
        if not args.skip_download:
            bench_download(db_url, root, token, args.rounds, args.statement_entries)
        if not args.skip_listing:
            bench_listing(db_url, root, token, args.months, args.per_client)
        if not args.skip_export:
            bench_export(db_file, db_url, root, token, args.entries)
    return 0
