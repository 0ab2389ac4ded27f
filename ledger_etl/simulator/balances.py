"""Exact per-day transaction totals, swept once and checkpointed, so a balance is a prefix sum.

A balance is the sum of every transaction before an instant. Rows exist only as the output of
`events.generate_day`, about 20 µs each, so adding them up from the first day costs minutes for a
two-year world at thousands of rows a day: too slow for `POST /session`, whose answer carries the
balance. Three ways out were weighed:

1. Draw each day's net cash from the seed first and generate rows to match. Trade P&L follows the
   price paths, so rows can only match a drawn total through a balancing row or a trade whose P&L
   disagrees with its prices: an artefact in every day of history. And a login would still have
   to generate the last `HORIZON_DAYS` days for today's rows and the open positions, ~3 s at 5,000
   rows a day, so it would not reach the target on its own either.
2. Keep the rows as they are and remember exact totals: one sweep over the source days, each
   generated once, adds every transaction to the UTC day it falls on. Day `d` is final once the
   source days up to `d` are swept, because no event's rows come before its start or more than
   `HORIZON_DAYS` after it. Final totals and their running sums make every balance O(1) plus the
   rows of the instant's own day. The sweep is checkpointed to disk under the world's identity and
   a fingerprint of the code that produces the rows, so a restart or a second process resumes
   where the last one stopped, and a code change can never reuse stale totals.
3. Run that sweep, and the generation of the days a login reads, in the background as soon as the
   simulator starts (`World.warm_up`), so the work is off the request path.

This module is 2 + 3: the rows, and so every test and ground-truth comparison, stay exactly as
they were, and the totals are the very sums of the rows the history endpoints serve.

A fourth way was measured and set aside: a totals-only pass over `generate_day` that draws the
same random numbers and adds up the same amounts but builds no activity row, no details and no
`Row` (equal totals on 124 days over 4 seeds). It is only 1.4 to 1.7 times faster: what remains
is each position's own arithmetic and the price path (`MarketData.mid`, hashed octaves and an
`exp`) at its open, partial close and close, which the trade P&L needs. A cold sweep of two
years at 5,000 rows a day would still take about a minute, where a login within a second needs
about 1.4 ms a day; and a second copy of the event logic would have to follow every change of
`events.py`. Sub-second cold logins at that size need another model (option 1), not a faster
sweep: the checkpoint and the warm-up are what keep the login off the sweep.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import asdict
from datetime import date, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, Rounded, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_etl.simulator.events import HORIZON_DAYS

if TYPE_CHECKING:
    from ledger_etl.simulator.world import World

log = logging.getLogger("ledger_etl.simulator")

FORMAT = 1
# Sums of cent amounts: far more digits than any balance needs, and a trap if one ever rounds.
SUM_CONTEXT = Context(prec=60, traps=[Inexact, Rounded])
CHECKPOINT_SECONDS = 5.0  # while sweeping, write progress at most this often
# The modules whose code decides the rows (and so the totals): any change starts a fresh sweep.
_ROW_MODULES = ("events", "world", "prices", "catalog", "balances")


def code_fingerprint() -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in _ROW_MODULES:
        digest.update(name.encode() + b"\0" + (here / f"{name}.py").read_bytes())
    return digest.hexdigest()


def world_identity(world: World) -> dict[str, Any]:
    """Everything the rows depend on besides the code: the world's whole configuration."""
    identity = asdict(world.config)
    identity["start"] = world.config.start.isoformat()
    identity["rows_per_day"] = float(world.config.rows_per_day)  # 400 and 400.0: one world
    return identity


class DayTotals:
    """Per account, the exact sum of transaction sizes of each UTC day from the world's start.

    `frontier` is the last day whose totals are final; `_carry` holds what the swept source days
    put on later days. `_running[a][i]` is the sum of account `a`'s days before `start + i`.
    """

    def __init__(self, world: World, directory: Path | None = None) -> None:
        self.world = world
        self.start = world.config.start
        self._accounts = len(world.accounts)
        self._lock = threading.Lock()
        self.frontier = self.start - timedelta(days=1)
        self._running: list[list[Decimal]] = [[Decimal(0)] for _ in range(self._accounts)]
        self._carry: dict[tuple[int, date], Decimal] = {}
        self._identity = world_identity(world)
        self._code = code_fingerprint()
        self.path: Path | None = None
        self._saved_frontier = self.frontier
        if directory is not None:
            key = json.dumps([self._identity, self._code], sort_keys=True).encode()
            self.path = directory / f"balances-{hashlib.sha256(key).hexdigest()[:32]}.json"
            self._load()

    # -- reading --------------------------------------------------------------------------------
    def before(self, account: int, day: date) -> Decimal:
        """The sum of the account's transactions on the days before `day` (from the start)."""
        if day <= self.start:
            return Decimal(0)
        self.ensure(day - timedelta(days=1))
        return self._running[account][(day - self.start).days]

    def ensure(self, last: date) -> None:
        """Sweep source days until `last` is final. One day per lock hold, so a background sweep
        and a request share the work instead of doing it twice."""
        last_saved = time.monotonic()
        while True:
            with self._lock:
                if self.frontier >= last:
                    break
                self._sweep(self.frontier + timedelta(days=1))
                if time.monotonic() - last_saved >= CHECKPOINT_SECONDS:
                    self._save()
                    last_saved = time.monotonic()
        with self._lock:
            self._save()

    # -- sweeping -------------------------------------------------------------------------------
    def _sweep(self, day: date) -> None:
        """Add source day `day`'s transactions to the days they fall on; `day` is then final."""
        horizon = day + timedelta(days=HORIZON_DAYS)
        rows = self.world.day_events(day).rows  # outside the summing context: it may round
        with localcontext(SUM_CONTEXT):
            for row in rows:
                if row.kind != "transaction":
                    continue
                on = row.ts.date()
                if not day <= on <= horizon:
                    # rows_on() looks no further back than the horizon: this row would be served
                    # on no day, so the balance and the history would disagree.
                    raise RuntimeError(f"a row of {day} falls on {on}, outside the horizon")
                key = (row.account, on)
                self._carry[key] = self._carry.get(key, Decimal(0)) + row.fields["size"]
            for account in range(self._accounts):
                running = self._running[account]
                running.append(running[-1] + self._carry.pop((account, day), Decimal(0)))
        self.frontier = day

    # -- the checkpoint -------------------------------------------------------------------------
    def _save(self) -> None:
        if self.path is None or self.frontier == self._saved_frontier:
            return
        body = {
            "format": FORMAT,
            "identity": self._identity,
            "code": self._code,
            "frontier": self.frontier.isoformat(),
            "running": [[str(v) for v in running] for running in self._running],
            "carry": [[a, d.isoformat(), str(v)] for (a, d), v in sorted(self._carry.items())],
        }
        body["sha256"] = _digest(body)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".balances-", suffix=".tmp")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(body, handle, separators=(",", ":"))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            # The checkpoint only saves time: without it the totals are still exact.
            log.warning("cannot write balance checkpoint %s: %s", self.path, exc)
            return
        self._saved_frontier = self.frontier

    def _load(self) -> None:
        assert self.path is not None
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read balance checkpoint %s: %s", self.path, exc)
            return
        try:
            frontier, running, carry = self._parse(json.loads(raw))
        except (ValueError, TypeError, KeyError, IndexError, InvalidOperation) as exc:
            log.warning("ignoring balance checkpoint %s: %s", self.path, exc)
            return
        self.frontier, self._running, self._carry = frontier, running, carry
        self._saved_frontier = frontier

    def _parse(
        self, body: Any
    ) -> tuple[date, list[list[Decimal]], dict[tuple[int, date], Decimal]]:
        """Check everything before trusting any of it: a wrong total would be served as truth."""
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError("unknown format")
        if body.get("sha256") != _digest(body):
            raise ValueError("its checksum does not match its content")
        if body["identity"] != self._identity or body["code"] != self._code:
            raise ValueError("written for another world or another version of the generator")
        frontier = date.fromisoformat(body["frontier"])
        days = (frontier - self.start).days + 1
        running = [[_amount(v) for v in series] for series in body["running"]]
        if days < 0 or len(running) != self._accounts:
            raise ValueError("wrong number of accounts or days")
        if any(len(series) != days + 1 or series[0] != 0 for series in running):
            raise ValueError("running sums do not match the frontier")
        carry: dict[tuple[int, date], Decimal] = {}
        for account, day, value in body["carry"]:
            on = date.fromisoformat(day)
            if not (0 <= account < self._accounts and frontier < on <= frontier + _HORIZON):
                raise ValueError(f"carry for account {account} on {day} is out of range")
            carry[(account, on)] = _amount(value)
        return frontier, running, carry


_HORIZON = timedelta(days=HORIZON_DAYS)


def _digest(body: dict[str, Any]) -> str:
    """A checksum of everything but itself: a damaged file must not be served as the truth."""
    content = {k: v for k, v in body.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _amount(text: Any) -> Decimal:
    if not isinstance(text, str):
        raise TypeError(f"amount {text!r} is not a string")
    value = Decimal(text)
    if not value.is_finite() or value != value.quantize(Decimal("0.01")):
        raise ValueError(f"amount {text!r} is not a whole number of cents")
    return value
