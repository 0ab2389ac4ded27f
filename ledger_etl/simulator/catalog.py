"""The simulator's instrument catalog and the market-data endpoints built on it.

Static data (instruments, navigation tree, watchlists, leverage preferences) lives here as frozen
values; `MarketData(seed)` renders the bodies of GET /markets, /markets/{epic}, /marketnavigation,
/prices/{epic}, /clientsentiment, /watchlists and /accounts/preferences from it. Everything is a
pure function of the seed and the `now` passed in: no I/O, no clock reads, no hidden state.

Market detail bodies carry both the current key names (`guaranteedStopAllowed`,
`minStopOrProfitDistance`, ...) and the older ones the vendor examples still show
(`controlledRiskAllowed`, `minNormalStopOrLimitDistance`, ...), so clients of either vintage parse.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.prices import (
    DAY,
    PriceSeries,
    WeeklyHours,
    align_down,
    epoch_second,
    price_history,
)
from ledger_etl.simulator.sentiment import sentiment_item
from ledger_etl.simulator.wire import format_local_datetime, format_row_datetime

Hours = tuple[tuple[str, ...], ...]  # Monday..Sunday, sessions "HH:MM - HH:MM" in UTC

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAYS_ONLY = 5


def _week(weekday: tuple[str, ...], friday: tuple[str, ...], sunday: tuple[str, ...]) -> Hours:
    return (weekday, weekday, weekday, weekday, friday, (), sunday)


METALS_HOURS = _week(("00:00 - 22:00", "23:05 - 00:00"), ("00:00 - 22:00",), ("23:05 - 00:00",))
ENERGY_HOURS = _week(("01:00 - 23:00",), ("01:00 - 23:00",), ())
FX_HOURS = _week(("00:00 - 00:00",), ("00:00 - 22:00",), ("22:00 - 00:00",))
US_INDEX_HOURS = _week(("00:00 - 21:00", "22:00 - 00:00"), ("00:00 - 21:00",), ("22:00 - 00:00",))
EU_INDEX_HOURS = _week(("06:00 - 21:00",), ("06:00 - 21:00",), ())
US_SHARES_HOURS = _week(("13:30 - 20:00",), ("13:30 - 20:00",), ())
ALWAYS_HOURS: Hours = (("00:00 - 00:00",),) * 7


@dataclass(frozen=True)
class Instrument:
    epic: str
    name: str
    symbol: str
    type: str
    currency: str
    base_price: Decimal
    decimals: int  # price decimals; one tick is 10^-decimals
    spread: Decimal  # ask - bid, a whole number of ticks
    pip_position: int
    hours: Hours
    min_deal_size: Decimal
    max_deal_size: Decimal
    min_size_increment: Decimal
    margin_factor: Decimal  # percent of notional; leverage = 100 / margin_factor
    min_guaranteed_stop_pct: Decimal
    min_stop_pct: Decimal
    max_stop_pct: Decimal
    guaranteed_stop_allowed: bool
    trailing_stops: bool
    overnight_long_rate: Decimal  # as the API reports them in `overnightFee`
    overnight_short_rate: Decimal
    band: float  # the price stays within base * e^±band
    volume_per_minute: int
    lot_size: int = 1

    @property
    def tick_size(self) -> Decimal:
        return Decimal(1).scaleb(-self.decimals)

    @property
    def leverage(self) -> Decimal:
        return Decimal(100) / self.margin_factor


D = Decimal
# Per-type defaults: band, volume/min, margin %, GSL %, min stop %, max stop %, long, short rate.
_TYPE_DEFAULTS: dict[str, tuple[float, int, str, str, str, str, str, str]] = {
    "COMMODITIES": (0.15, 150, "10", "1", "0.01", "60", "-0.0199715", "0.0117515"),
    "CURRENCIES": (0.06, 400, "5", "0.5", "0.01", "20", "-0.0078", "0.0021"),
    "INDICES": (0.12, 300, "5", "1", "0.01", "50", "-0.0221", "0.0054"),
    "SHARES": (0.25, 120, "20", "5", "0.1", "90", "-0.0232", "0.0068"),
    "CRYPTOCURRENCIES": (0.35, 80, "50", "10", "0.5", "90", "-0.0685", "0.0119"),
}


def _make(
    epic: str,
    name: str,
    kind: str,
    currency: str,
    price: str,
    spread: str,
    pip: int,
    hours: Hours,
    sizes: tuple[str, str, str],
    **overrides: Any,
) -> Instrument:
    band, volume, margin, gsl, min_stop, max_stop, long_rate, short_rate = _TYPE_DEFAULTS[kind]
    decimals = -D(price).as_tuple().exponent
    fields: dict[str, Any] = {
        "epic": epic, "name": name, "symbol": overrides.pop("symbol", name), "type": kind,
        "currency": currency, "base_price": D(price), "decimals": decimals, "spread": D(spread),
        "pip_position": pip, "hours": hours, "min_deal_size": D(sizes[0]),
        "max_deal_size": D(sizes[1]), "min_size_increment": D(sizes[2]),
        "margin_factor": D(margin), "min_guaranteed_stop_pct": D(gsl),
        "min_stop_pct": D(min_stop), "max_stop_pct": D(max_stop),
        "guaranteed_stop_allowed": kind != "CRYPTOCURRENCIES", "trailing_stops": True,
        "overnight_long_rate": D(long_rate), "overnight_short_rate": D(short_rate),
        "band": band, "volume_per_minute": volume,
    }  # fmt: skip
    fields.update(overrides)
    return Instrument(**fields)


_C, _F, _I, _S, _X = "COMMODITIES", "CURRENCIES", "INDICES", "SHARES", "CRYPTOCURRENCIES"
INSTRUMENTS: dict[str, Instrument] = {
    i.epic: i
    for i in (
        _make("GOLD", "Gold", _C, "USD", "2350.00", "0.30", 0, METALS_HOURS, ("0.1", "5000", "0.1"),
              margin_factor=D(5)),
        _make("SILVER", "Silver", _C, "USD", "28.000", "0.020", 2, METALS_HOURS,
              ("1", "100000", "1"), trailing_stops=False),
        _make("OIL_CRUDE", "Crude Oil", _C, "USD", "75.00", "0.03", 2, ENERGY_HOURS,
              ("1", "10000", "1"), symbol="Oil - Crude"),
        _make("NATURALGAS", "Natural Gas", _C, "USD", "2.800", "0.006", 3, ENERGY_HOURS,
              ("10", "500000", "10"), max_stop_pct=D(30)),
        _make("EURUSD", "EUR/USD", _F, "USD", "1.08500", "0.00006", 4, FX_HOURS,
              ("1000", "50000000", "1000"), symbol="EURUSD"),
        _make("GBPUSD", "GBP/USD", _F, "USD", "1.27000", "0.00009", 4, FX_HOURS,
              ("1000", "50000000", "1000"), symbol="GBPUSD"),
        _make("USDJPY", "USD/JPY", _F, "JPY", "150.000", "0.008", 2, FX_HOURS,
              ("1000", "50000000", "1000"), symbol="USDJPY"),
        _make("USDCHF", "USD/CHF", _F, "CHF", "0.90000", "0.00010", 4, FX_HOURS,
              ("1000", "50000000", "1000"), symbol="USDCHF"),
        _make("EURGBP", "EUR/GBP", _F, "GBP", "0.85000", "0.00010", 4, FX_HOURS,
              ("1000", "50000000", "1000"), symbol="EURGBP"),
        _make("US500", "US 500", _I, "USD", "5200.0", "0.4", 1, US_INDEX_HOURS,
              ("0.1", "2000", "0.1"), symbol="US500"),
        _make("DE40", "Germany 40", _I, "EUR", "18000.0", "1.0", 1, EU_INDEX_HOURS,
              ("0.1", "1000", "0.1"), symbol="DE40"),
        _make("AAPL", "Apple Inc", _S, "USD", "190.00", "0.06", 2, US_SHARES_HOURS,
              ("1", "20000", "1"), symbol="AAPL"),
        _make("TSLA", "Tesla Inc", _S, "USD", "180.00", "0.10", 2, US_SHARES_HOURS,
              ("1", "20000", "1"), symbol="TSLA"),
        _make("BTCUSD", "Bitcoin/USD", _X, "USD", "60000.00", "60.00", 0, ALWAYS_HOURS,
              ("0.01", "100", "0.01"), symbol="BTCUSD", trailing_stops=False),
    )
}  # fmt: skip


def instrument(epic: str) -> Instrument:
    try:
        return INSTRUMENTS[epic]
    except KeyError:
        raise ApiError(404, "error.not-found.epic") from None


@dataclass(frozen=True)
class NavNode:
    id: str
    name: str
    children: tuple[str, ...] = ()
    epics: tuple[str, ...] = ()  # a leaf lists markets, an inner node lists children


_NODES = (
    NavNode("hierarchy_v1.commons_group", "commons_group",
            children=("hierarchy_v1.commons.most_traded", "hierarchy_v1.commons.weekend_trading")),
    NavNode("hierarchy_v1.commons.most_traded", "Most Traded",
            epics=("GOLD", "EURUSD", "US500", "BTCUSD", "OIL_CRUDE", "AAPL", "TSLA")),
    NavNode("hierarchy_v1.commons.weekend_trading", "Weekend Trading", epics=("BTCUSD",)),
    NavNode("hierarchy_v1.commodities_group", "commodities_group",
            children=("hierarchy_v1.commodities", "hierarchy_v1.commodities.metals")),
    NavNode("hierarchy_v1.commodities", "Commodities",
            epics=("NATURALGAS", "SILVER", "GOLD", "OIL_CRUDE")),
    NavNode("hierarchy_v1.commodities.metals", "Metals", epics=("GOLD", "SILVER")),
    NavNode("hierarchy_v1.oil_markets_group", "oil_markets_group",
            children=("hierarchy_v1.oil_markets",)),
    NavNode("hierarchy_v1.oil_markets", "Energy", epics=("OIL_CRUDE", "NATURALGAS")),
    NavNode("hierarchy_v1.currencies_group", "currencies_group",
            children=("hierarchy_v1.currencies.majors",)),
    NavNode("hierarchy_v1.currencies.majors", "Majors",
            epics=("EURUSD", "GBPUSD", "USDJPY", "USDCHF", "EURGBP")),
    NavNode("hierarchy_v1.indices_group", "indices_group",
            children=("hierarchy_v1.indices.global",)),
    NavNode("hierarchy_v1.indices.global", "Global Indices", epics=("US500", "DE40")),
    NavNode("hierarchy_v1.shares_group", "shares_group", children=("hierarchy_v1.shares.us",)),
    NavNode("hierarchy_v1.shares.us", "US Shares", epics=("AAPL", "TSLA")),
    NavNode("hierarchy_v1.cryptocurrencies_group", "cryptocurrencies_group",
            children=("hierarchy_v1.cryptocurrencies",)),
    NavNode("hierarchy_v1.cryptocurrencies", "Cryptocurrencies", epics=("BTCUSD",)),
)  # fmt: skip
NAVIGATION: dict[str, NavNode] = {node.id: node for node in _NODES}
TOP_LEVEL_NODES: tuple[str, ...] = tuple(n.id for n in _NODES if n.id.endswith("_group"))
NAVIGATION_LIMIT = 500


@dataclass(frozen=True)
class Watchlist:
    id: str
    name: str
    epics: tuple[str, ...]
    editable: bool = True
    deleteable: bool = True
    default_system: bool = False


WATCHLISTS: tuple[Watchlist, ...] = (
    Watchlist("123456", "Hello world", ("SILVER", "NATURALGAS")),
    Watchlist("123457", "watchlist1", ("GOLD", "EURUSD", "US500", "BTCUSD")),
)

# Leverage groups in the order the API lists them, with the values a demo account starts with.
LEVERAGE_CHOICES: dict[str, tuple[int, ...]] = {
    "SHARES": (1, 2, 3, 5),
    "CURRENCIES": (1, 10, 20, 30),
    "INDICES": (1, 10, 20),
    "CRYPTOCURRENCIES": (1, 2),
    "COMMODITIES": (1, 5, 10, 20),
}
DEFAULT_LEVERAGES: dict[str, int] = {
    "SHARES": 2, "CURRENCIES": 1, "INDICES": 10, "CRYPTOCURRENCIES": 1, "COMMODITIES": 5,
}  # fmt: skip


def _number(value: Decimal) -> int | float:
    """A JSON number as the API prints it: integral values without a fraction."""
    return int(value) if value == value.to_integral_value() else float(value)


def _split(values: str) -> list[str]:
    return [part.strip() for part in values.split(",") if part.strip()]


def _limit(value: str | None) -> int:
    if value is None:
        return NAVIGATION_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= NAVIGATION_LIMIT:
        raise ApiError(400, "error.invalid.limit")
    return int(value)


def _rule(unit_name: str, value: Decimal) -> dict[str, Any]:
    return {"unit": unit_name, "value": _number(value)}


class MarketData:
    """Seeded market data: quotes, bars, snapshots and sentiment, all pure functions of time."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._series = {
            epic: PriceSeries(
                seed,
                epic,
                base=i.base_price,
                decimals=i.decimals,
                spread=i.spread,
                band=i.band,
                volume_per_minute=i.volume_per_minute,
                hours=WeeklyHours(i.hours),
            )
            for epic, i in INSTRUMENTS.items()
        }

    def series(self, epic: str) -> PriceSeries:
        instrument(epic)
        return self._series[epic]

    # -- quotes -----------------------------------------------------------------------------

    def mid(self, epic: str, instant: datetime) -> Decimal:
        """The mid at `instant`, to the instrument's decimals; frozen while the market is shut."""
        series = self._series.get(epic) or self.series(epic)
        return series.to_decimal(series.mid_ticks(epoch_second(instant)))

    def bid_ask(self, epic: str, instant: datetime) -> tuple[Decimal, Decimal]:
        """(bid, ask) around the mid; ask - bid is exactly the instrument's spread."""
        series = self._series.get(epic) or self.series(epic)
        mid = series.mid_ticks(epoch_second(instant))
        return series.to_decimal(series.bid_ticks(mid)), series.to_decimal(series.ask_ticks(mid))

    def is_open(self, epic: str, instant: datetime) -> bool:
        return self.series(epic).hours.is_open(epoch_second(instant))

    # -- markets ----------------------------------------------------------------------------

    def _quote(
        self, epic: str, now: datetime, offset_hours: int
    ) -> tuple[Instrument, dict[str, Any]]:
        """The fields a market item and a market snapshot share."""
        inst, series = instrument(epic), self._series[epic]
        stats = series.day_stats(epoch_second(now))
        if stats.is_open:
            updated = now if now.tzinfo else now.replace(tzinfo=UTC)
        else:
            updated = datetime.fromtimestamp(stats.quote_time, UTC)
        change = stats.mid - stats.previous_close
        percent = (Decimal(change * 100) / Decimal(stats.previous_close)).quantize(D("0.0001"))
        return inst, {
            "marketStatus": "TRADEABLE" if stats.is_open else "CLOSED",
            "netChange": series.to_float(change),
            "percentageChange": float(percent),
            "updateTime": format_local_datetime(updated, offset_hours),
            "updateTimeUTC": format_row_datetime(updated),
            "bid": series.to_float(series.bid_ticks(stats.mid)),
            "offer": series.to_float(series.ask_ticks(stats.mid)),
            "high": series.to_float(series.bid_ticks(stats.high)),
            "low": series.to_float(series.bid_ticks(stats.low)),
        }

    def market_item(self, epic: str, now: datetime, *, offset_hours: int = 2) -> dict[str, Any]:
        """A market as listed by search, navigation and watchlists."""
        inst, q = self._quote(epic, now, offset_hours)
        return {
            "delayTime": 0, "epic": inst.epic, "symbol": inst.symbol,
            "netChange": q["netChange"], "lotSize": inst.lot_size, "expiry": "-",
            "instrumentType": inst.type, "instrumentName": inst.name, "high": q["high"],
            "low": q["low"], "percentageChange": q["percentageChange"],
            "updateTime": q["updateTime"], "updateTimeUTC": q["updateTimeUTC"], "bid": q["bid"],
            "offer": q["offer"], "streamingPricesAvailable": True,
            "marketStatus": q["marketStatus"], "scalingFactor": 1, "marketModes": ["REGULAR"],
            "pipPosition": inst.pip_position, "tickSize": float(inst.tick_size),
        }  # fmt: skip

    def market_items(
        self, epics: Iterable[str], now: datetime, *, offset_hours: int = 2
    ) -> list[dict[str, Any]]:
        return [self.market_item(epic, now, offset_hours=offset_hours) for epic in epics]

    def market_details(self, epic: str, now: datetime, *, offset_hours: int = 2) -> dict[str, Any]:
        """GET /markets/{epic}: `{instrument, dealingRules, snapshot}`."""
        inst, q = self._quote(epic, now, offset_hours)
        now_s = epoch_second(now)
        swap_at = align_down(now_s, DAY) + 22 * 3600  # overnight fees are charged at 22:00 UTC
        if swap_at <= now_s:
            swap_at += DAY
        hours: dict[str, Any] = {day: list(s) for day, s in zip(_DAYS, inst.hours, strict=True)}
        hours["zone"] = "UTC"
        gsl, min_stop, max_stop = (
            _rule("PERCENTAGE", inst.min_guaranteed_stop_pct),
            _rule("PERCENTAGE", inst.min_stop_pct),
            _rule("PERCENTAGE", inst.max_stop_pct),
        )
        return {
            "instrument": {
                "epic": inst.epic, "symbol": inst.symbol, "expiry": "-", "name": inst.name,
                "lotSize": inst.lot_size, "type": inst.type,
                "guaranteedStopAllowed": inst.guaranteed_stop_allowed,
                "controlledRiskAllowed": inst.guaranteed_stop_allowed,
                "streamingPricesAvailable": True, "currency": inst.currency,
                "marginFactor": _number(inst.margin_factor), "marginFactorUnit": "PERCENTAGE",
                "openingHours": hours,
                "overnightFee": {
                    "longRate": float(inst.overnight_long_rate),
                    "shortRate": float(inst.overnight_short_rate),
                    "swapChargeTimestamp": swap_at * 1000, "swapChargeInterval": 1440,
                },
                "country": "",
            },
            "dealingRules": {
                "minStepDistance": _rule("POINTS", inst.tick_size),
                "minDealSize": _rule("POINTS", inst.min_deal_size),
                "maxDealSize": _rule("POINTS", inst.max_deal_size),
                "minSizeIncrement": _rule("POINTS", inst.min_size_increment),
                "minGuaranteedStopDistance": gsl, "minStopOrProfitDistance": min_stop,
                "maxStopOrProfitDistance": max_stop, "minControlledRiskStopDistance": dict(gsl),
                "minNormalStopOrLimitDistance": dict(min_stop),
                "maxStopOrLimitDistance": dict(max_stop),
                "marketOrderPreference": "AVAILABLE_DEFAULT_ON",
                "trailingStopsPreference": "AVAILABLE" if inst.trailing_stops else "NOT_AVAILABLE",
            },
            "snapshot": {
                "marketStatus": q["marketStatus"], "netChange": q["netChange"],
                "percentageChange": q["percentageChange"], "updateTime": q["updateTime"],
                "delayTime": 0, "bid": q["bid"], "offer": q["offer"], "high": q["high"],
                "low": q["low"], "decimalPlacesFactor": inst.decimals, "scalingFactor": 1,
                "marketModes": ["REGULAR"],
            },
        }  # fmt: skip

    def search_markets(
        self,
        search_term: str | None,
        epics: str | None,
        now: datetime,
        *,
        offset_hours: int = 2,
        markets_without_params: str = "all",
    ) -> dict[str, Any]:
        """GET /markets. `markets_without_params="error"` restores the pre-2023-08 answer
        (400 error.null.epic) to a request with neither parameter."""
        if search_term is not None:  # when both are given, only searchTerm counts
            term = search_term.strip().lower()
            if not term:
                raise ApiError(400, "error.null.searchTerm")
            found = [
                e for e, i in INSTRUMENTS.items() if term in e.lower() or term in i.name.lower()
            ]
            return {"markets": self.market_items(found, now, offset_hours=offset_hours)}
        if epics is not None:
            # The documented cap of 50 epics has no documented error, so longer lists are served.
            wanted = _split(epics)
            if not wanted:
                raise ApiError(400, "error.null.epic")
            # An unknown epic fails the whole call (inferred from GET /markets/{epic}).
            for epic in wanted:
                instrument(epic)
            details = [self.market_details(e, now, offset_hours=offset_hours) for e in wanted]
            return {"marketDetails": details}
        if markets_without_params == "error":
            raise ApiError(400, "error.null.epic")
        if markets_without_params != "all":
            raise ValueError(
                f"markets_without_params must be 'all' or 'error', not {markets_without_params!r}"
            )
        return {"markets": self.market_items(INSTRUMENTS, now, offset_hours=offset_hours)}

    def market_navigation(
        self, node_id: str | None, limit: str | None, now: datetime, *, offset_hours: int = 2
    ) -> dict[str, Any]:
        """GET /marketnavigation (node_id None) and /marketnavigation/{nodeId}?limit=."""
        count = _limit(limit)
        if not node_id:
            return {"nodes": [{"id": n, "name": NAVIGATION[n].name} for n in TOP_LEVEL_NODES]}
        node = NAVIGATION.get(node_id)
        if node is None:
            raise ApiError(404, "error.not-found.nodeId")  # inferred: no sample shows this case
        if node.children:
            return {"nodes": [{"id": c, "name": NAVIGATION[c].name} for c in node.children]}
        markets = self.market_items(node.epics[:count], now, offset_hours=offset_hours)
        return {"nodes": [], "markets": markets}

    # -- prices -----------------------------------------------------------------------------

    def prices(
        self,
        epic: str,
        resolution: str | None,
        max_: str | None,
        from_: str | None,
        to: str | None,
        now: datetime,
        *,
        offset_hours: int = 2,
    ) -> dict[str, Any]:
        """GET /prices/{epic}?resolution=&max=&from=&to= (raw query strings, None when absent)."""
        inst = instrument(epic)
        return price_history(
            self._series[epic], inst.type, resolution, max_, from_, to, now, offset_hours
        )

    # -- sentiment --------------------------------------------------------------------------

    def client_sentiment_one(self, market_id: str, now: datetime) -> dict[str, Any]:
        """GET /clientsentiment/{marketId}: moves with `now` (see `simulator.sentiment`), two
        decimals, long + short = 100."""
        inst = instrument(market_id)
        return sentiment_item(self.seed, inst.epic, epoch_second(now))

    def client_sentiment(self, market_ids: str | None, now: datetime) -> dict[str, Any]:
        """GET /clientsentiment?marketIds=A,B; one unknown market fails the whole call."""
        wanted = _split(market_ids or "")
        if not wanted:
            raise ApiError(400, "error.null.marketIds")  # inferred from the error.null.* family
        return {"clientSentiments": [self.client_sentiment_one(m, now) for m in wanted]}

    # -- watchlists and preferences ---------------------------------------------------------

    def watchlists(self, lists: Iterable[Watchlist] = WATCHLISTS) -> dict[str, Any]:
        """GET /watchlists; pass `lists` to render watchlists created at run time."""
        return {
            "watchlists": [
                {"id": w.id, "name": w.name, "editable": w.editable, "deleteable": w.deleteable,
                 "defaultSystemWatchlist": w.default_system}
                for w in lists
            ]
        }  # fmt: skip

    def watchlist(
        self,
        watchlist_id: str,
        now: datetime,
        *,
        offset_hours: int = 2,
        lists: Iterable[Watchlist] = WATCHLISTS,
    ) -> dict[str, Any]:
        """GET /watchlists/{id}: the markets of one watchlist."""
        for w in lists:
            if w.id == watchlist_id:
                return {"markets": self.market_items(w.epics, now, offset_hours=offset_hours)}
        raise ApiError(404, "error.invalid.watchlist")

    def account_preferences(
        self, leverages: Mapping[str, int] | None = None, hedging_mode: bool = False
    ) -> dict[str, Any]:
        """GET /accounts/preferences; `leverages` overrides the current value per group."""
        current = {**DEFAULT_LEVERAGES, **(leverages or {})}
        return {
            "hedgingMode": hedging_mode,
            "leverages": {
                group: {"current": current[group], "available": list(choices)}
                for group, choices in LEVERAGE_CHOICES.items()
            },
        }
