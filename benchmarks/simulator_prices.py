"""How fast the simulator's price path answers: `python -m benchmarks simulator_prices`.

Prints the rate of single mid-price lookups and the time to build a page of DAY and MINUTE bars
and the whole market list. A DAY bar is the aggregate of its day's MINUTE bars, so a page of
1,000 DAY bars computes about 1.4 million minutes. The simulator keeps the minutes of the last 48
days per market only, so asking for the same page again costs about as much; both times are printed.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from ledger_etl.simulator.catalog import MarketData

WEDNESDAY = datetime(2022, 4, 6, 13, 30, 12, 345000, tzinfo=UTC)  # every market is open


def _timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks simulator_prices")
    parser.add_argument("--calls", type=int, default=100_000, help="mid-price lookups")
    parser.add_argument("--bars", default="1000", help="bars per page")
    args = parser.parse_args(argv)
    md = MarketData(42)
    seconds = _timed(
        lambda: [md.mid("GOLD", WEDNESDAY + timedelta(seconds=k)) for k in range(args.calls)]
    )
    print(f"mid: {args.calls / seconds:,.0f} lookups/s over {args.calls:,} seconds of GOLD")
    for label, call_args in {
        f"{args.bars} DAY bars (GOLD)": ("GOLD", "DAY", args.bars, None, None, WEDNESDAY),
        f"{args.bars} MINUTE bars (BTCUSD)": ("BTCUSD", "MINUTE", args.bars, None, None, WEDNESDAY),
    }.items():
        cold = _timed(lambda a=call_args: md.prices(*a))
        warm = _timed(lambda a=call_args: md.prices(*a))
        print(f"{label}: first {cold * 1000:,.1f} ms, again {warm * 1000:,.1f} ms")
    print(f"all markets: {_timed(lambda: md.search_markets(None, None, WEDNESDAY)) * 1000:,.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
