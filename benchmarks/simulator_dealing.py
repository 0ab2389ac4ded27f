"""Dealing in the simulator: creating deals over HTTP, reading them back, and orders settling.

`python -m benchmarks simulator_dealing [--positions 1000] [--orders 500] [--repeat 3]`

One account (hedging mode, so positions do not net) receives `--positions` market positions and
`--orders` working orders placed far from the price (they stay open), over real HTTP on a frozen
clock stepped 0.1 s per create. Printed: create throughput, the latency and size of
GET /positions and GET /workingorders (median of `--repeat`), the time a one-day clock jump takes
to settle the working orders (the first request after it scans each order's price path), and the
process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from datetime import UTC, date, datetime

import httpx

from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig

NOW = datetime(2026, 1, 14, 12, 0, tzinfo=UTC)  # a Wednesday noon: these markets trade
EPICS = ("SILVER", "OIL_CRUDE", "NATURALGAS")
SIZES = {"SILVER": 1, "OIL_CRUDE": 1, "NATURALGAS": 10}


def _timed(call: object) -> tuple[float, httpx.Response]:
    began = time.perf_counter()
    response = call()  # type: ignore[operator]
    return time.perf_counter() - began, response


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks simulator_dealing")
    parser.add_argument("--positions", type=int, default=1000)
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    config = SimulatorConfig(
        world=WorldConfig(seed=42, start=date(2025, 10, 1)),
        rate_limit_per_second=0, login_rate_per_second=0, session_idle_seconds=10**9,
        orders_per_hour=None,
    )  # fmt: skip
    clock = Clock(NOW, frozen=True)
    server = SimulatorServer(config, clock=clock).start()
    http = httpx.Client(base_url=server.url + "/api/v1", timeout=60)
    try:
        login = http.post(
            "/session", json={"identifier": config.identifier, "password": config.password},
            headers={"X-CAP-API-KEY": config.api_key},
        )  # fmt: skip
        tokens = {k: login.headers[k] for k in ("CST", "X-SECURITY-TOKEN")}
        http.put("/accounts/preferences", json={"hedgingMode": True}, headers=tokens)
        quotes = {e: http.get(f"/markets/{e}", headers=tokens).json()["snapshot"] for e in EPICS}
        refused = 0
        began = time.perf_counter()
        for i in range(args.positions + args.orders):
            clock.advance(0.1)
            epic = EPICS[i % len(EPICS)]
            body: dict[str, object] = {"epic": epic, "direction": "BUY", "size": SIZES[epic]}
            path = "/positions"
            if i >= args.positions:
                path = "/workingorders"
                body.update(type="LIMIT", level=round(quotes[epic]["bid"] * 0.5, 2))
            if http.post(path, json=body, headers=tokens).status_code != 200:
                refused += 1
        created = time.perf_counter() - began
        total = args.positions + args.orders
        print(f"created {total - refused} deals ({refused} refused) in {created:.1f} s: "
              f"{total / created:.0f} creates/s over HTTP")  # fmt: skip
        for path, key in (("/positions", "positions"), ("/workingorders", "workingOrders")):
            runs = [_timed(lambda p=path: http.get(p, headers=tokens)) for _ in range(args.repeat)]
            seconds = statistics.median(r[0] for r in runs)
            answer = runs[-1][1]
            size = len(answer.content) / 1e6
            print(f"GET {path}: {len(answer.json()[key])} items, {size:.2f} MB,"
                  f" {seconds * 1000:.0f} ms (median of {args.repeat})")  # fmt: skip
        clock.advance(86400)
        seconds, answer = _timed(lambda: http.get("/workingorders", headers=tokens))
        print(f"one-day clock jump, settle {args.orders} working orders + GET /workingorders: "
              f"{seconds:.2f} s ({len(answer.json()['workingOrders'])} still working)")  # fmt: skip
    finally:
        http.close()
        server.stop()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
