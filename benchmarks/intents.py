"""Trade intents end to end against the simulator: acknowledgement latency and confirmed rate.

`python -m benchmarks intents [--rate 50] [--seconds 10] [--orders 50] [--database-url URL]`

1. Acknowledgement latency: intents are posted open-loop at `--rate` per second for `--seconds`
   (asyncio: a slow answer never delays the next send), and the time from sending to the
   webhook's answer is measured at the sender. The service runs in dry-run mode here, with its
   executor working through the queue (reads, risk checks) all along.
2. Confirmed rate: `--orders` intents are posted at once to a live service, and the time until
   the last one is ACCEPTED is measured. The broker refuses a second order request within 0.1 s,
   so 10 per second is the bound.
The service runs as `ledger-etl intents serve` in its own process; the simulator (on a thread)
and the sender share this one. All three share this machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ledger_etl.capital import CapitalClient
from ledger_etl.intents import store
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.settings import SIMULATOR_API_KEY, SIMULATOR_IDENTIFIER, SIMULATOR_PASSWORD
from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from ledger_etl.simulator.server import free_port

SECRET = "benchmark-secret-0123456789"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # a Thursday noon: the markets used are open
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
    }  # fmt: skip
    command = [str(Path(sys.executable).with_name("ledger-etl")), "intents", "serve",
               "--port", str(port)] + (["--live"] if live else [])  # fmt: skip
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the intents service did not start")


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


def acknowledgement(url: str, account: str, rate: float, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    total = int(rate * seconds)

    async def send(http: httpx.AsyncClient, n: int) -> None:
        began = time.perf_counter()
        response = await http.post("/intents", json=_body(account, n, "ack"))
        latencies.append(time.perf_counter() - began)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    async def run() -> float:
        limits = httpx.Limits(max_connections=500, max_keepalive_connections=500)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
            start = time.perf_counter()
            tasks = []
            for n in range(total):
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(send(http, n)))
            await asyncio.gather(*tasks)
            return time.perf_counter() - start

    sent_for = asyncio.run(run())
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
        print(f"intents benchmark: {engine.dialect.name}, simulator at {sim.url}")
        process, url = _service(sim.url, db_url, live=False)
        try:
            ack = acknowledgement(url, account, args.rate, args.seconds)
        finally:
            _stop(process)
        print(
            f"acknowledgement at {args.rate:g}/s for {args.seconds:g} s (dry run): "
            f"{ack['sent']} sent at {ack['achieved_rate']:.1f}/s, statuses {ack['statuses']}, "
            f"p50 {ack['p50_ms']:.1f} ms, p99 {ack['p99_ms']:.1f} ms, "
            f"max {ack['max_ms']:.1f} ms (target p99 <= 50 ms)"
        )
        # A fresh database: the dry-run queue left behind must not stand in front of the orders.
        db_url = args.database_url or f"sqlite:///{Path(tmp) / 'intents-live.sqlite'}"
        engine = make_engine(db_url)
        upgrade(engine)
        process, url = _service(sim.url, db_url, live=True)
        try:
            rate = confirmed_rate(url, engine, account, args.orders)
        finally:
            _stop(process)
        print(
            f"confirmed (live, at the broker's order spacing): {rate['accepted']}/"
            f"{rate['orders']} accepted in {rate['seconds']:.2f} s = "
            f"{rate['per_second']:.2f} intents/s (bound {rate['bound_per_second']:g}/s); "
            f"received->confirmed p50 {rate['received_to_confirmed_p50_ms']:.0f} ms; "
            f"{rate['attempts']} POSTs for {rate['orders']} intents"
        )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
