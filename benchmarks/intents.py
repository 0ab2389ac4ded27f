"""Trade intents end to end against the simulator: acknowledgement latency and confirmed rate.

`python -m benchmarks intents [--rate 50] [--seconds 10] [--orders 50] [--database-url URL]`

1. Acknowledgement latency: intents are posted open-loop at `--rate` per second for `--seconds`
   (asyncio: a slow answer never delays the next send), and the time from sending to the
   webhook's answer is measured at the sender, a process of its own speaking bare HTTP/1.1 over
   kept-alive connections (so neither the simulator's thread nor an HTTP library's cost is in
   the figures). The service runs in dry-run mode here, with its
   executor working through the queue (reads, risk checks) all along.
2. Confirmed rate: `--orders` intents are posted at once to a live service, and the time until
   the last one is ACCEPTED is measured. The broker refuses a second order request within 0.1 s,
   so 10 per second is the bound; the requests the broker answered per intent, under its general
   limit of 10 requests per second, give the bound of the executor's design, whatever the load.
The service runs as `ledger-etl intents serve` in its own process, the simulator on a thread of
this one. All three share this machine's cores: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from ledger_etl.capital import CapitalClient
from ledger_etl.intents import store
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.settings import SIMULATOR_API_KEY, SIMULATOR_IDENTIFIER, SIMULATOR_PASSWORD
from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from ledger_etl.simulator.server import free_port

SECRET = "benchmark-secret-0123456789"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # a Thursday noon: the markets used are open
WARM_CONNECTIONS = 20  # connections opened before the clock starts (TradingView keeps them too)
WARM_SECONDS = 2.0  # after the service answers, before the figures: it reads its markets
EPICS = (("GOLD", "0.1"), ("EURUSD", "1000"), ("US500", "0.1"), ("BTCUSD", "0.01"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _service(sim_url: str, db_url: str, live: bool) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ, "CAPITAL_API_URL": sim_url, "CAPITAL_API_KEY": SIMULATOR_API_KEY,
        "CAPITAL_IDENTIFIER": SIMULATOR_IDENTIFIER, "CAPITAL_PASSWORD": SIMULATOR_PASSWORD,
        "LEDGER_DATABASE_URL": db_url, "LEDGER_INTENTS_SECRET": SECRET,
        # The markets traded: the service reads their dealing rules at start (`Executor.warm`).
        "LEDGER_INTENTS_ALLOWED_EPICS": ",".join(epic for epic, _ in EPICS),
    }  # fmt: skip
    command = [str(Path(sys.executable).with_name("ledger-etl")), "intents", "serve",
               "--port", str(port)] + (["--live"] if live else [])  # fmt: skip
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                time.sleep(WARM_SECONDS)  # the executor reads the allowed markets meanwhile
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the intents service did not start")


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _broker_requests(sim: SimulatorServer) -> int:
    """Requests the simulator has answered so far (from every client)."""
    stats = sim.simulator.stats
    with stats.lock:
        return sum(stats.by_path.values())


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def _body(account: str, n: int, prefix: str) -> dict:
    epic, size = EPICS[n % len(EPICS)]
    return {"secret": SECRET, "alert_id": f"{prefix}-{n}", "account": account, "epic": epic,
            "action": "buy", "size": size}  # fmt: skip


async def _post(
    pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]], host: str, port: int, body: bytes
) -> int:
    """One `POST /intents` over a kept-alive connection (a new one when none is free); the
    status. A bare HTTP/1.1 exchange: the sender's own cost stays out of the figures."""
    reader, writer = pool.pop() if pool else await asyncio.open_connection(host, port)
    head = (
        f"POST /intents HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    pool.append((reader, writer))
    return status


def _send_open_loop(url: str, bodies: list[bytes], rate: float, results: Any) -> None:
    """In a process of its own: post `bodies` open-loop at `rate` per second (a slow answer
    never delays the next send) and put (latencies, statuses, seconds sending) on `results`."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def send(pool: list, body: bytes) -> None:
        began = time.perf_counter()
        status = await _post(pool, host, port, body)
        latencies.append(time.perf_counter() - began)
        statuses[status] = statuses.get(status, 0) + 1

    async def run() -> float:
        pool = [await asyncio.open_connection(host, port) for _ in range(WARM_CONNECTIONS)]
        start = time.perf_counter()
        tasks = []
        for n, body in enumerate(bodies):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(pool, body)))
        await asyncio.gather(*tasks)
        return time.perf_counter() - start

    sent_for = asyncio.run(run())
    results.put((latencies, statuses, sent_for))


def acknowledgement(url: str, account: str, rate: float, seconds: float) -> dict:
    total = int(rate * seconds)
    bodies = [json.dumps(_body(account, n, "ack")).encode() for n in range(total)]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    sender = context.Process(target=_send_open_loop, args=(url, bodies, rate, results))
    sender.start()
    latencies, statuses, sent_for = results.get(timeout=600)
    sender.join(timeout=30)
    return {
        "sent": total,
        "achieved_rate": total / sent_for,
        "statuses": statuses,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000,
    }


def confirmed_rate(url: str, engine, account: str, orders: int) -> dict:
    with httpx.Client(base_url=url, timeout=30) as http:
        start = time.perf_counter()
        for n in range(orders):
            answer = http.post("/intents", json=_body(account, n, "rate"))
            assert answer.status_code == 202, answer.text
    while True:
        rows = store.listing(engine, limit=10 * orders)
        rate_rows = [r for r in rows if r.idem_key.startswith("alert:rate-")]
        final = [r for r in rate_rows if r.state in ("ACCEPTED", "REJECTED")]
        if len(final) == orders:
            break
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    accepted = sum(1 for r in final if r.state == "ACCEPTED")
    confirm_ms = [(r.confirmed_at - r.received_at).total_seconds() * 1000 for r in final]
    return {"orders": orders, "accepted": accepted, "seconds": elapsed,
            "per_second": accepted / elapsed, "bound_per_second": 10.0,
            "received_to_confirmed_p50_ms": _percentile(confirm_ms, 0.5),
            "attempts": sum(r.attempts for r in final)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks intents")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--orders", type=int, default=50)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)
    config = SimulatorConfig(world=WorldConfig(demo=True), rate_limit_per_second=0)
    with tempfile.TemporaryDirectory() as tmp, SimulatorServer(config, clock=Clock(NOW)) as sim:
        db_url = args.database_url or f"sqlite:///{Path(tmp) / 'intents.sqlite'}"
        engine = make_engine(db_url)
        upgrade(engine)
        with CapitalClient(
            sim.url, SIMULATOR_API_KEY, SIMULATOR_IDENTIFIER, SIMULATOR_PASSWORD
        ) as client:
            account = client.accounts()[0].account_id
        print(
            f"intents benchmark: {engine.dialect.name}, simulator at {sim.url}, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        process, url = _service(sim.url, db_url, live=False)
        try:
            cpu_before = _cpu_seconds(process.pid)
            ack = acknowledgement(url, account, args.rate, args.seconds)
            time.sleep(1.0)  # the executor's share of the work: the queue drains
            cpu_after = _cpu_seconds(process.pid)
        finally:
            _stop(process)
        cpu = (
            "n/a"
            if cpu_before is None or cpu_after is None
            else f"{(cpu_after - cpu_before) / ack['sent'] * 1000:.2f} ms"
        )
        print(
            f"acknowledgement at {args.rate:g}/s for {args.seconds:g} s (dry run): "
            f"{ack['sent']} sent at {ack['achieved_rate']:.1f}/s, statuses {ack['statuses']}, "
            f"p50 {ack['p50_ms']:.1f} ms, p99 {ack['p99_ms']:.1f} ms, "
            f"max {ack['max_ms']:.1f} ms (target p99 <= 50 ms); "
            f"load average {os.getloadavg()[0]:.1f}; service CPU per intent {cpu}"
        )
        # A fresh database: the dry-run queue left behind must not stand in front of the orders.
        db_url = args.database_url or f"sqlite:///{Path(tmp) / 'intents-live.sqlite'}"
        engine = make_engine(db_url)
        upgrade(engine)
        process, url = _service(sim.url, db_url, live=True)
        try:
            asked_before = _broker_requests(sim)
            rate = confirmed_rate(url, engine, account, args.orders)
            asked = _broker_requests(sim) - asked_before
        finally:
            _stop(process)
        print(
            f"confirmed (live, at the broker's order spacing): {rate['accepted']}/"
            f"{rate['orders']} accepted in {rate['seconds']:.2f} s = "
            f"{rate['per_second']:.2f} intents/s (bound {rate['bound_per_second']:g}/s); "
            f"received->confirmed p50 {rate['received_to_confirmed_p50_ms']:.0f} ms; "
            f"{rate['attempts']} POSTs for {rate['orders']} intents; "
            f"{asked / rate['orders']:.2f} broker requests per intent, so at most "
            f"{10 / (asked / rate['orders']):.1f} intents/s under the 10 requests/s limit"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
