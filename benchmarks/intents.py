"""Trade intents end to end against the simulator: acknowledgement latency and confirmed rate.

`python -m benchmarks intents [--rate 50] [--seconds 10] [--orders 50] [--database-url URL]`

1. Acknowledgement latency: intents are posted open-loop at `--rate` per second for `--seconds`
   (each from its own thread, so a slow answer never delays the next send), and the time from
   sending to the webhook's answer is measured at the sender. The service runs in dry-run mode
   here, with its executor working through the queue (reads, risk checks) all along.
2. Confirmed rate: `--orders` intents are posted at once to a live service, and the time until
   the last one is ACCEPTED is measured. The broker refuses a second order request within 0.1 s,
   so 10 per second is the bound.
The simulator, the service and the sender share this machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ledger_etl.capital import CapitalClient
from ledger_etl.intents import store
from ledger_etl.intents.runner import IntentsService, Options, build
from ledger_etl.ledger.db import make_engine, upgrade
from ledger_etl.settings import SIMULATOR_API_KEY, SIMULATOR_IDENTIFIER, SIMULATOR_PASSWORD
from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig

SECRET = "benchmark-secret-0123456789"
NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)  # a Thursday noon: the markets used are open
EPICS = (("GOLD", "0.1"), ("EURUSD", "1000"), ("US500", "0.1"), ("BTCUSD", "0.01"))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _service(engine, client: CapitalClient, live: bool) -> IntentsService:
    ctx, executor = build(engine, client, Options(SECRET, live=live))
    return IntentsService(ctx, executor).start()


def _body(account: str, n: int, prefix: str) -> dict:
    epic, size = EPICS[n % len(EPICS)]
    return {"secret": SECRET, "alert_id": f"{prefix}-{n}", "account": account, "epic": epic,
            "action": "buy", "size": size}  # fmt: skip


def acknowledgement(url: str, account: str, rate: float, seconds: float) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    http = httpx.Client(base_url=url, timeout=10, limits=httpx.Limits(max_connections=200))

    def send(n: int) -> None:
        began = time.perf_counter()
        response = http.post("/intents", json=_body(account, n, "ack"))
        elapsed = time.perf_counter() - began
        with lock:
            latencies.append(elapsed)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    threads = []
    total = int(rate * seconds)
    start = time.perf_counter()
    for n in range(total):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        t = threading.Thread(target=send, args=(n,))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    sent_for = time.perf_counter() - start
    http.close()
    return {
        "sent": total, "achieved_rate": total / sent_for, "statuses": statuses,
        "p50_ms": _percentile(latencies, 0.50) * 1000, "p99_ms": _percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000, "mean_ms": statistics.fmean(latencies) * 1000,
    }  # fmt: skip


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
        url = args.database_url or f"sqlite:///{Path(tmp) / 'intents.sqlite'}"
        engine = make_engine(url)
        upgrade(engine)
        with CapitalClient(sim.url, SIMULATOR_API_KEY, SIMULATOR_IDENTIFIER,
                           SIMULATOR_PASSWORD, rate_limit=200) as client:  # fmt: skip
            account = client.accounts()[0].account_id
            print(f"intents benchmark: {engine.dialect.name}, simulator at {sim.url}")
            service = _service(engine, client, live=False)
            try:
                ack = acknowledgement(service.url, account, args.rate, args.seconds)
            finally:
                service.stop()
            print(
                f"acknowledgement at {args.rate:g}/s for {args.seconds:g} s (dry run): "
                f"{ack['sent']} sent at {ack['achieved_rate']:.1f}/s, statuses {ack['statuses']}, "
                f"p50 {ack['p50_ms']:.1f} ms, p99 {ack['p99_ms']:.1f} ms, "
                f"max {ack['max_ms']:.1f} ms (target p99 <= 50 ms)"
            )
            service = _service(engine, client, live=True)
            try:
                rate = confirmed_rate(service.url, engine, account, args.orders)
            finally:
                service.stop()
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
