"""What the intents executor needs of a broker, and its Capital.com implementation.

The executor only sees `Broker`; `CapitalBroker` maps it onto the capital client. Dealing POSTs
are sent once: the client never replays them after a transport failure, and here a 429 is not
waited out either (`retry_rate_limited=False`), because the intent goes back to the durable
queue instead. A dealing call ends in exactly one of:
- a deal reference (the broker took the request; `/confirms` says what became of it);
- `BrokerRefused`: an answer that proves nothing was dealt (a 4xx such as a validation code, or
  a 429, `rate_limited=True`);
- `BrokerInDoubt`: no usable answer (timeout, reset, 5xx, malformed body): the request may
  have been dealt, and only the broker's state can tell.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from ledger_etl.capital import CapitalClient
from ledger_etl.capital.errors import ApiError, CapitalError
from ledger_etl.capital.trading import fetch_confirm, fetch_positions, fetch_working_orders
from ledger_etl.capital.trading_models import Confirm, MarketDetails, parse_market_details
from ledger_etl.trading import fx
from ledger_etl.trading.poll import account_currency

from .rules import Market, Order

MARKET_CACHE_S = 60.0  # dealing rules widen in volatile markets: minutes, never a day


class BrokerRefused(Exception):
    def __init__(self, code: str | None, *, rate_limited: bool = False) -> None:
        super().__init__(code or "refused")
        self.code = code
        self.rate_limited = rate_limited


class BrokerInDoubt(Exception):
    """The request may or may not have reached the broker."""


class NotCached(Exception):
    """Inside `cache_only()`: the answer needs a request to the broker."""


@dataclass(frozen=True)
class Deal:
    deal_id: str
    kind: str  # position | order
    epic: str
    direction: str
    size: Decimal
    level: Decimal
    upl: Decimal | None = None
    working_order_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "deal_id": self.deal_id,
            "kind": self.kind,
            "epic": self.epic,
            "direction": self.direction,
            "size": str(self.size),
            "level": str(self.level),
            "working_order_id": self.working_order_id,
        }


class Broker(Protocol):
    def account(self, account_id: str) -> AbstractContextManager[Any]: ...
    def market(self, epic: str) -> Market | None: ...
    def account_currency(self, account_id: str) -> str | None: ...
    def fx_rate(self, currency: str, account_currency: str) -> Decimal | None: ...
    def deals(self, account_id: str, orders: bool = True) -> list[Deal]: ...
    def open_position(self, account_id: str, order: Order) -> str: ...
    def create_working_order(self, account_id: str, order: Order) -> str: ...
    def close_position(self, account_id: str, deal_id: str) -> str: ...
    def cancel_order(self, account_id: str, deal_id: str) -> str: ...
    def confirm(self, account_id: str, reference: str) -> Confirm | None: ...


def _number(value: Decimal) -> int | float:
    """A Decimal as the JSON number with the same text; refused when a float cannot carry it."""
    if value == value.to_integral_value():
        return int(value)
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        raise ValueError(f"{value} cannot be sent exactly as a JSON number")
    return as_float


def order_body(order: Order, *, working: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "epic": order.epic,
        "direction": order.direction,
        "size": _number(order.size),
    }
    if working:
        body["type"] = order.order_type
        body["level"] = _number(order.level or order.reference_price)
        if order.good_till is not None:
            body["goodTillDate"] = order.good_till.strftime("%Y-%m-%dT%H:%M:%S")
    for key, value in (
        ("stopDistance", order.stop_distance),
        ("stopLevel", order.stop_level),
        ("profitDistance", order.profit_distance),
        ("profitLevel", order.profit_level),
    ):
        if value is not None:
            body[key] = _number(value)
    if order.guaranteed_stop:
        body["guaranteedStop"] = True
    if order.trailing_stop:
        body["trailingStop"] = True
    return body


class CapitalBroker:
    """`Broker` over one logged-in `CapitalClient` (its account lock serializes accounts)."""

    def __init__(self, client: CapitalClient, monotonic: Any = time.monotonic) -> None:
        self.client = client
        self._monotonic = monotonic
        # epic -> (when read, details); None remembers an unknown epic (FX legs such as USDEUR
        # are asked for by name and mostly do not exist), so it is not asked again each time.
        self._markets: dict[str, tuple[float, MarketDetails | None]] = {}
        self._lock = threading.Lock()
        self._accounts: tuple[float, dict[str, Any]] | None = None
        self._local = threading.local()
        self._used: dict[str, float] = {}  # epic -> when last asked for
        self._fetching: dict[str, threading.Lock] = {}

    @contextmanager
    def cache_only(self) -> Iterator[None]:
        """In this thread, answer from the caches only: a miss raises `NotCached` instead of
        asking the broker (the webhook judges an intent this way before it is stored)."""
        self._local.cache_only = True
        try:
            yield
        finally:
            self._local.cache_only = False

    def _miss(self, what: str) -> None:
        if getattr(self._local, "cache_only", False):
            raise NotCached(what)

    def _details(self, epic: str) -> MarketDetails | None:
        now = self._monotonic()
        with self._lock:
            cached = self._markets.get(epic)
            self._used[epic] = now
        if cached is not None and now - cached[0] < MARKET_CACHE_S:
            return cached[1]
        self._miss(epic)
        with self._lock:
            single = self._fetching.setdefault(epic, threading.Lock())
        with single:  # one request per epic: concurrent misses wait for its answer
            with self._lock:
                cached = self._markets.get(epic)
            if cached is not None and self._monotonic() - cached[0] < MARKET_CACHE_S:
                return cached[1]
            return self._fetch(epic)

    def _fetch(self, epic: str) -> MarketDetails | None:
        now = self._monotonic()
        try:
            response = self.client.request("GET", f"/markets/{epic}")
        except ApiError as error:
            if error.status not in (400, 404):
                raise
            parsed = None
        else:
            found = parse_market_details(response.body)
            parsed = found if isinstance(found, MarketDetails) else None
        with self._lock:
            self._markets[epic] = (now, parsed)
        return parsed

    def refresh(self, older_than: float = MARKET_CACHE_S / 2) -> int:
        """Read again the markets used within the cache's lifetime whose details are older
        than `older_than` seconds, and the accounts, so that the webhook finds them cached;
        returns how many markets. The executor calls it when it has nothing else to do."""
        now = self._monotonic()
        with self._lock:
            stale = [
                epic
                for epic, (read, _) in self._markets.items()
                if now - read >= older_than and now - self._used.get(epic, 0.0) < MARKET_CACHE_S
            ]
        for epic in stale:
            self._fetch(epic)
        if self._accounts is not None and now - self._accounts[0] >= older_than:
            self._accounts = (now, {a.account_id: a for a in self.client.accounts()})
        return len(stale)

    def account(self, account_id: str) -> AbstractContextManager[Any]:
        """Scope calls to `account_id`: the executor holds one scope over a run of intents of
        one account, so the session is switched once, not before every request."""
        return self.client.on_account(account_id)

    def market(self, epic: str) -> Market | None:
        details = self._details(epic)
        if details is None or details.snapshot is None:
            return None
        snap, inst = details.snapshot, details.instrument
        if snap.bid is None or snap.offer is None:
            return None
        rules = details.dealing_rules
        step = (rules.get("minStepDistance") or {}).get("value")
        decimals = snap.decimal_places_factor
        tick = Decimal(1).scaleb(-decimals) if decimals is not None else Decimal(str(step or 1))
        return Market(
            inst.epic,
            inst.currency,
            inst.lot_size or Decimal(1),
            snap.bid,
            snap.offer,
            snap.market_status,
            tick,
            rules,
            bool(inst.guaranteed_stop_allowed),
            inst.type,
        )

    def _account(self, account_id: str) -> Any:
        now = self._monotonic()
        if self._accounts is None or now - self._accounts[0] >= MARKET_CACHE_S:
            self._miss("accounts")
            self._accounts = (now, {a.account_id: a for a in self.client.accounts()})
        return self._accounts[1].get(account_id)

    def account_currency(self, account_id: str) -> str | None:
        return account_currency(self._account(account_id))

    def balance(self, account_id: str) -> Decimal | None:
        account = self._account(account_id)
        return account.balance.balance if account and account.balance else None

    def fx_rate(self, currency: str, account_ccy: str) -> Decimal | None:
        quotes: dict[str, fx.Quote] = {}
        for epic in sorted(fx.fx_epics({currency}, account_ccy)):
            details = self._details(epic)
            if details and details.snapshot and details.snapshot.bid and details.snapshot.offer:
                quotes[epic] = (details.snapshot.bid, details.snapshot.offer, _epoch())
        found = fx.rate(currency, account_ccy, quotes)
        return None if found is None else found.rate

    def deals(self, account_id: str, orders: bool = True) -> list[Deal]:
        """Open positions, and working orders unless `orders` is False (a market order
        neither needs nor changes them: one request less before each POST)."""
        with self.client.on_account(account_id):
            positions = fetch_positions(self.client).rows
            working = fetch_working_orders(self.client).rows if orders else []
        out = [
            Deal(
                p.position.deal_id,
                "position",
                p.market.epic,
                p.position.direction,
                p.position.size,
                p.position.level,
                p.position.upl,
                p.position.working_order_id,
            )
            for p in positions
        ]
        out += [
            Deal(
                o.working_order_data.deal_id,
                "order",
                o.working_order_data.epic,
                o.working_order_data.direction,
                o.working_order_data.order_size,
                o.working_order_data.order_level,
            )
            for o in working
        ]
        return out

    def _deal(self, account_id: str, method: str, path: str, body: dict[str, Any] | None) -> str:
        try:
            with self.client.on_account(account_id):
                response = self.client.request(
                    method, path, json=body, expect_key="dealReference", retry_rate_limited=False
                )
        except ApiError as error:
            if error.status == 429:
                raise BrokerRefused(error.error_code, rate_limited=True) from None
            if 400 <= error.status < 500:
                raise BrokerRefused(error.error_code) from None
            raise BrokerInDoubt(str(error)) from None
        except CapitalError as error:  # transport failure, timeout, malformed answer
            raise BrokerInDoubt(str(error)) from None
        reference = response.body.get("dealReference")
        if not isinstance(reference, str) or not reference:
            raise BrokerInDoubt(f"{method} {path} answered without a dealReference")
        return reference

    def open_position(self, account_id: str, order: Order) -> str:
        return self._deal(account_id, "POST", "/positions", order_body(order, working=False))

    def create_working_order(self, account_id: str, order: Order) -> str:
        return self._deal(account_id, "POST", "/workingorders", order_body(order, working=True))

    def close_position(self, account_id: str, deal_id: str) -> str:
        return self._deal(account_id, "DELETE", f"/positions/{deal_id}", None)

    def cancel_order(self, account_id: str, deal_id: str) -> str:
        return self._deal(account_id, "DELETE", f"/workingorders/{deal_id}", None)

    def confirm(self, account_id: str, reference: str) -> Confirm | None:
        try:
            with self.client.on_account(account_id):
                return fetch_confirm(self.client, reference, attempts=6, wait_s=0.05)
        except ApiError as error:
            if error.status == 404:
                return None
            raise


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)
