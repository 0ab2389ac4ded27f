"""Unit tests of the simulator's instrument catalog, price paths and market-data bodies."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger_etl.simulator.catalog import (
    INSTRUMENTS,
    WATCHLISTS,
    MarketData,
    Watchlist,
    instrument,
)
from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.prices import RESOLUTIONS, WeeklyHours, parse_session

WEDNESDAY = datetime(2022, 4, 6, 13, 30, 12, 345000, tzinfo=UTC)  # every market is open
SATURDAY = datetime(2022, 4, 9, 12, 0, tzinfo=UTC)  # only BTCUSD trades
COLLECTION = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "vendor"
    / "capital-api-postman"
    / "capital.collection.json"
)


@pytest.fixture(scope="module")
def md() -> MarketData:
    return MarketData(42)


def api_error(call: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call()
    return caught.value


def assert_error(call: Any, status: int, code: str) -> None:
    error = api_error(call)
    assert (error.status, error.error_code) == (status, code)


def dec(value: float) -> Decimal:
    return Decimal(repr(value))


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- catalog ----------------------------------------------------------------------------------


def test_catalog_covers_every_instrument_type() -> None:
    assert len(INSTRUMENTS) == 14
    by_type: dict[str, set[str]] = {}
    for i in INSTRUMENTS.values():
        by_type.setdefault(i.type, set()).add(i.epic)
    assert by_type == {
        "COMMODITIES": {"GOLD", "SILVER", "OIL_CRUDE", "NATURALGAS"},
        "CURRENCIES": {"EURUSD", "GBPUSD", "USDJPY", "USDCHF", "EURGBP"},
        "INDICES": {"US500", "DE40"},
        "SHARES": {"AAPL", "TSLA"},
        "CRYPTOCURRENCIES": {"BTCUSD"},
    }
    for epic, i in INSTRUMENTS.items():
        assert i.epic == epic
        assert i.base_price.as_tuple().exponent == -i.decimals
        assert i.spread > 0 and (i.spread / i.tick_size) % 1 == 0
        assert i.leverage * i.margin_factor == 100


def test_instrument_lookup() -> None:
    assert instrument("SILVER").name == "Silver"
    assert_error(lambda: instrument("NOPE"), 404, "error.not-found.epic")
    assert_error(lambda: instrument("silver"), 404, "error.not-found.epic")
    with pytest.raises(dataclasses.FrozenInstanceError):
        instrument("GOLD").decimals = 5  # type: ignore[misc]


def test_weekly_hours() -> None:
    assert parse_session("23:05 - 00:00") == (1385, 1440)
    assert parse_session("00:00 - 00:00") == (0, 1440)
    metals = WeeklyHours(INSTRUMENTS["GOLD"].hours)
    friday_close = int(utc("2022-04-08T22:00:00").timestamp())
    assert metals.is_open(friday_close - 1) and not metals.is_open(friday_close)
    assert metals.next_open(friday_close) == int(utc("2022-04-10T23:05:00").timestamp())
    assert metals.prev_open(int(SATURDAY.timestamp())) == friday_close - 1
    # The daily break and the Sunday-to-Monday join across the week boundary.
    assert metals.spans(friday_close - 7200, friday_close + 3 * 86400) == [
        (friday_close - 7200, friday_close),
        (int(utc("2022-04-10T23:05:00").timestamp()), friday_close + 3 * 86400),
    ]
    assert WeeklyHours(INSTRUMENTS["BTCUSD"].hours).always_open


# -- quotes -----------------------------------------------------------------------------------


def test_mid_is_deterministic_and_depends_on_the_seed() -> None:
    a, b, other = MarketData(42), MarketData(42), MarketData(43)
    instants = [WEDNESDAY + timedelta(minutes=7 * k) for k in range(50)]
    for epic in INSTRUMENTS:
        first = [a.mid(epic, t) for t in instants]
        assert first == [b.mid(epic, t) for t in reversed(instants)][::-1]
        assert first != [other.mid(epic, t) for t in instants]


def test_mid_is_positive_rounded_and_near_the_base(md: MarketData) -> None:
    start = datetime(2021, 1, 1, tzinfo=UTC)
    for epic, i in INSTRUMENTS.items():
        low = i.base_price * Decimal(math.exp(-i.band)) - i.tick_size
        high = i.base_price * Decimal(math.exp(i.band)) + i.tick_size
        for k in range(400):
            mid = md.mid(epic, start + timedelta(hours=47 * k, seconds=k))
            assert mid > 0
            assert mid.as_tuple().exponent == -i.decimals
            assert low <= mid <= high, (epic, mid)
            assert dec(float(mid)) == mid  # floats built from it round-trip exactly


def test_naive_instants_are_utc(md: MarketData) -> None:
    naive = WEDNESDAY.replace(tzinfo=None)
    assert md.mid("GOLD", naive) == md.mid("GOLD", WEDNESDAY)


def test_bid_ask_spread(md: MarketData) -> None:
    for epic, i in INSTRUMENTS.items():
        for k in range(20):
            t = WEDNESDAY + timedelta(seconds=97 * k)
            bid, ask = md.bid_ask(epic, t)
            assert ask - bid == i.spread
            assert bid <= md.mid(epic, t) <= ask


def test_quote_is_frozen_while_the_market_is_closed(md: MarketData) -> None:
    last_open = utc("2022-04-08T21:59:59")
    assert not md.is_open("GOLD", SATURDAY)
    assert md.is_open("GOLD", last_open)
    assert md.mid("GOLD", SATURDAY) == md.mid("GOLD", last_open)
    assert md.is_open("BTCUSD", SATURDAY)
    assert md.mid("BTCUSD", SATURDAY) != md.mid("BTCUSD", SATURDAY - timedelta(hours=1))


# -- prices -----------------------------------------------------------------------------------


def bar_times(body: dict[str, Any]) -> list[str]:
    return [bar["snapshotTimeUTC"] for bar in body["prices"]]


def test_prices_default_is_the_last_ten_minute_bars(md: MarketData) -> None:
    body = md.prices("BTCUSD", None, None, None, None, WEDNESDAY)
    assert body["instrumentType"] == "CRYPTOCURRENCIES"
    assert bar_times(body) == [f"2022-04-06T13:{m}:00" for m in range(21, 31)]
    assert body["prices"][0]["snapshotTime"] == "2022-04-06T15:21:00"
    moved = md.prices("BTCUSD", None, None, None, None, WEDNESDAY, offset_hours=3)
    assert moved["prices"][0]["snapshotTime"] == "2022-04-06T16:21:00"
    assert moved["prices"][0]["snapshotTimeUTC"] == "2022-04-06T13:21:00"


def test_in_progress_bar_closes_at_the_current_quote(md: MarketData) -> None:
    last = md.prices("BTCUSD", None, "1", None, None, WEDNESDAY)["prices"][-1]
    bid, ask = md.bid_ask("BTCUSD", WEDNESDAY)
    assert last["closePrice"] == {"bid": float(bid), "ask": float(ask)}


@pytest.mark.parametrize("resolution", list(RESOLUTIONS))
@pytest.mark.parametrize("epic", ["GOLD", "EURUSD", "AAPL", "BTCUSD"])
def test_bars_are_consistent(md: MarketData, epic: str, resolution: str) -> None:
    i = INSTRUMENTS[epic]
    body = md.prices(epic, resolution, "60", None, None, WEDNESDAY)
    seconds = RESOLUTIONS[resolution]
    starts = [utc(t) for t in bar_times(body)]
    assert 0 < len(starts) <= 60
    assert starts == sorted(set(starts)) and starts[-1] <= WEDNESDAY
    monday = datetime(2022, 4, 4, tzinfo=UTC)
    assert all((s - monday).total_seconds() % seconds == 0 for s in starts)
    for bar in body["prices"]:
        assert set(bar) == {
            "snapshotTime", "snapshotTimeUTC", "openPrice", "closePrice", "highPrice",
            "lowPrice", "lastTradedVolume",
        }  # fmt: skip
        assert utc(bar["snapshotTime"]) - utc(bar["snapshotTimeUTC"]) == timedelta(hours=2)
        assert isinstance(bar["lastTradedVolume"], int) and bar["lastTradedVolume"] > 0
        for side in ("bid", "ask"):
            o, c = bar["openPrice"][side], bar["closePrice"][side]
            h, lo = bar["highPrice"][side], bar["lowPrice"][side]
            assert lo <= min(o, c) and max(o, c) <= h
        for key in ("openPrice", "closePrice", "highPrice", "lowPrice"):
            pair = bar[key]
            assert dec(pair["ask"]) - dec(pair["bid"]) == i.spread
            assert all(dec(v).as_tuple().exponent >= -i.decimals for v in pair.values())


def test_prices_are_deterministic_and_depend_on_the_seed() -> None:
    args = ("SILVER", "MINUTE_5", "200", None, None, WEDNESDAY)
    assert MarketData(42).prices(*args) == MarketData(42).prices(*args)
    assert MarketData(42).prices(*args) != MarketData(43).prices(*args)
    # A bar does not depend on when it is asked for once it is complete.
    early = MarketData(42).prices("SILVER", "HOUR", None, "2022-04-05T00:00:00", None, WEDNESDAY)
    later = MarketData(42).prices(
        "SILVER", "HOUR", None, "2022-04-05T00:00:00", None, WEDNESDAY + timedelta(days=30)
    )
    assert early == later


def test_prices_from_only(md: MarketData) -> None:
    body = md.prices("SILVER", "MINUTE_15", "4", "2022-02-24T00:00:00", None, WEDNESDAY)
    assert bar_times(body) == [f"2022-02-24T00:{m:02d}:00" for m in (0, 15, 30, 45)]
    # An unaligned `from` starts at the next bar: filtering is on the bar's open time.
    body = md.prices("SILVER", "MINUTE_15", "2", "2022-02-24T00:00:01", None, WEDNESDAY)
    assert bar_times(body) == ["2022-02-24T00:15:00", "2022-02-24T00:30:00"]


def test_prices_from_to_both_inclusive(md: MarketData) -> None:
    body = md.prices(
        "BTCUSD", "MINUTE", None, "2022-04-06T10:00:00", "2022-04-06T10:09:00", WEDNESDAY
    )
    assert bar_times(body) == [f"2022-04-06T10:0{m}:00" for m in range(10)]
    body = md.prices("BTCUSD", "HOUR", "5", "2022-04-06T08:00:00", "2022-04-06T10:00:00", WEDNESDAY)
    assert bar_times(body) == ["2022-04-06T08:00:00", "2022-04-06T09:00:00", "2022-04-06T10:00:00"]


def test_prices_window_limit_is_calendar_span(md: MarketData) -> None:
    ok = md.prices("BTCUSD", None, "1000", "2022-04-05T00:00:00", "2022-04-05T16:39:00", WEDNESDAY)
    assert len(ok["prices"]) == 1000  # 999 minute steps pass
    assert_error(
        lambda: md.prices(
            "BTCUSD", None, "1000", "2022-04-05T00:00:00", "2022-04-05T16:40:00", WEDNESDAY
        ),
        400,
        "error.invalid.max.daterange",
    )
    assert_error(
        lambda: md.prices(
            "GOLD", None, None, "2022-04-05T10:00:00", "2022-04-05T10:10:00", WEDNESDAY
        ),
        400,
        "error.invalid.max.daterange",
    )
    # Closed hours still count towards the span: the rule is about time, not rows.
    assert_error(
        lambda: md.prices(
            "AAPL", "HOUR", "24", "2022-04-05T00:00:00", "2022-04-06T00:00:00", WEDNESDAY
        ),
        400,
        "error.invalid.max.daterange",
    )


def test_prices_skip_closed_hours(md: MarketData) -> None:
    body = md.prices(
        "GOLD", "HOUR", "4", "2022-04-08T20:00:00", None, WEDNESDAY + timedelta(days=9)
    )
    assert bar_times(body) == [
        "2022-04-08T20:00:00", "2022-04-08T21:00:00", "2022-04-10T23:00:00", "2022-04-11T00:00:00",
    ]  # fmt: skip
    weekend = md.prices("GOLD", None, None, None, None, SATURDAY)
    assert bar_times(weekend)[-1] == "2022-04-08T21:59:00"
    assert len(weekend["prices"]) == 10
    week = md.prices("GOLD", "WEEK", "3", None, None, SATURDAY)
    assert bar_times(week) == ["2022-03-21T00:00:00", "2022-03-28T00:00:00", "2022-04-04T00:00:00"]


def test_prices_errors(md: MarketData) -> None:
    def call(**kw: Any) -> Any:
        args = {"resolution": None, "max_": None, "from_": None, "to": None} | kw
        return lambda: md.prices("SILVER", now=WEDNESDAY, **args)

    assert_error(
        lambda: md.prices("NOPE", None, None, None, None, WEDNESDAY), 404, "error.not-found.epic"
    )
    for bad in ("MINUTE_3", "minute", "", "HOUR_2"):
        assert_error(call(resolution=bad), 400, "error.invalid.resolution")
    for bad in ("0", "1001", "abc", "", "-1", "2.5"):
        assert_error(call(max_=bad), 400, "error.invalid.max")
    for bad in ("2022-04-01T00:00:00Z", "2022-04-01", "1648771200", "2022-04-01T00:00:00.000", ""):
        assert_error(call(from_=bad), 400, "error.invalid.from")
        assert_error(call(to=bad), 400, "error.invalid.to")
    assert_error(call(to="2022-04-06T13:31:00"), 400, "error.invalid.daterange")
    assert_error(
        call(from_="2022-04-06T13:00:00", to="2022-04-06T12:59:00"), 400, "error.invalid.daterange"
    )
    # A valid window in which the market never traded.
    assert_error(
        lambda: md.prices(
            "AAPL", None, "1000", "2022-04-02T00:00:00", "2022-04-02T10:00:00", WEDNESDAY
        ),
        404,
        "error.prices.not-found",
    )
    assert_error(call(from_="2022-04-06T14:00:00"), 404, "error.prices.not-found")


# -- markets ----------------------------------------------------------------------------------

ITEM_KEYS = {
    "delayTime", "epic", "symbol", "netChange", "lotSize", "expiry", "instrumentType",
    "instrumentName", "high", "low", "percentageChange", "updateTime", "updateTimeUTC", "bid",
    "offer", "streamingPricesAvailable", "marketStatus", "scalingFactor", "marketModes",
    "pipPosition", "tickSize",
}  # fmt: skip


def test_market_item(md: MarketData) -> None:
    for epic, i in INSTRUMENTS.items():
        item = md.market_item(epic, WEDNESDAY)
        assert set(item) == ITEM_KEYS
        assert item["marketStatus"] == "TRADEABLE"
        assert item["updateTimeUTC"] == "2022-04-06T13:30:12.345"
        assert item["updateTime"] == "2022-04-06T15:30:12.345"
        assert item["low"] <= item["bid"] <= item["high"]
        assert dec(item["offer"]) - dec(item["bid"]) == i.spread
        bid, _ = md.bid_ask(epic, WEDNESDAY)
        assert dec(item["bid"]) == bid
        assert abs(dec(item["netChange"])).as_tuple().exponent >= -i.decimals
        assert dec(item["percentageChange"]).as_tuple().exponent >= -4
    closed = md.market_item("GOLD", SATURDAY, offset_hours=3)
    assert closed["marketStatus"] == "CLOSED"
    assert (closed["updateTimeUTC"], closed["updateTime"]) == (
        "2022-04-08T21:59:59",
        "2022-04-09T00:59:59",
    )
    assert md.market_item("BTCUSD", SATURDAY)["marketStatus"] == "TRADEABLE"


def test_market_item_change_matches_day_bars(md: MarketData) -> None:
    item = md.market_item("BTCUSD", WEDNESDAY)
    days = md.prices("BTCUSD", "DAY", "2", None, None, WEDNESDAY)["prices"]
    assert item["high"] == days[1]["highPrice"]["bid"] and item["low"] == days[1]["lowPrice"]["bid"]
    change = dec(item["bid"]) - dec(days[0]["closePrice"]["bid"])
    assert dec(item["netChange"]) == change


def test_market_details(md: MarketData) -> None:
    body = md.market_details("SILVER", WEDNESDAY)
    assert set(body) == {"instrument", "dealingRules", "snapshot"}
    inst, rules, snap = body["instrument"], body["dealingRules"], body["snapshot"]
    assert inst["openingHours"] == {
        "mon": ["00:00 - 22:00", "23:05 - 00:00"], "tue": ["00:00 - 22:00", "23:05 - 00:00"],
        "wed": ["00:00 - 22:00", "23:05 - 00:00"], "thu": ["00:00 - 22:00", "23:05 - 00:00"],
        "fri": ["00:00 - 22:00"], "sat": [], "sun": ["23:05 - 00:00"], "zone": "UTC",
    }  # fmt: skip
    assert inst["guaranteedStopAllowed"] is inst["controlledRiskAllowed"] is True
    assert inst["marginFactor"] == 10 and inst["marginFactorUnit"] == "PERCENTAGE"
    assert inst["overnightFee"]["swapChargeTimestamp"] == int(
        utc("2022-04-06T22:00:00").timestamp() * 1000
    )
    for current, older in (
        ("minGuaranteedStopDistance", "minControlledRiskStopDistance"),
        ("minStopOrProfitDistance", "minNormalStopOrLimitDistance"),
        ("maxStopOrProfitDistance", "maxStopOrLimitDistance"),
    ):
        assert rules[current] == rules[older] and rules[current]["unit"] == "PERCENTAGE"
    assert rules["minStepDistance"] == {"unit": "POINTS", "value": 0.001}
    assert snap["decimalPlacesFactor"] == 3 and snap["marketStatus"] == "TRADEABLE"
    item = md.market_item("SILVER", WEDNESDAY)
    assert (snap["bid"], snap["offer"], snap["high"], snap["low"]) == (
        item["bid"], item["offer"], item["high"], item["low"],
    )  # fmt: skip
    assert md.market_details("BTCUSD", WEDNESDAY)["instrument"]["guaranteedStopAllowed"] is False
    assert_error(lambda: md.market_details("NOPE", WEDNESDAY), 404, "error.not-found.epic")
    json.dumps(body)


def test_search_markets(md: MarketData) -> None:
    def epics(body: dict[str, Any], key: str = "markets") -> list[str]:
        return [m["epic"] if key == "markets" else m["instrument"]["epic"] for m in body[key]]

    assert epics(md.search_markets("silver", None, WEDNESDAY)) == ["SILVER"]
    assert epics(md.search_markets("GaS", None, WEDNESDAY)) == ["NATURALGAS"]
    assert epics(md.search_markets("usd", None, WEDNESDAY)) == [
            "EURUSD", "GBPUSD", "USDJPY", "USDCHF", "BTCUSD",
    ]  # fmt: skip
    assert md.search_markets("zzz", None, WEDNESDAY) == {"markets": []}
    by_epic = md.search_markets(None, "SILVER, NATURALGAS", WEDNESDAY)
    assert epics(by_epic, "marketDetails") == ["SILVER", "NATURALGAS"]
    assert by_epic["marketDetails"][0] == md.market_details("SILVER", WEDNESDAY)
    # searchTerm wins when both are given.
    assert epics(md.search_markets("gold", "SILVER", WEDNESDAY)) == ["GOLD"]
    assert len(md.search_markets(None, None, WEDNESDAY)["markets"]) == len(INSTRUMENTS)
    assert_error(
        lambda: md.search_markets(None, None, WEDNESDAY, markets_without_params="error"),
        400,
        "error.null.epic",
    )
    assert_error(lambda: md.search_markets("", None, WEDNESDAY), 400, "error.null.searchTerm")
    assert_error(lambda: md.search_markets("", "SILVER", WEDNESDAY), 400, "error.null.searchTerm")
    assert_error(lambda: md.search_markets(None, "", WEDNESDAY), 400, "error.null.epic")
    assert_error(lambda: md.search_markets(None, " , ", WEDNESDAY), 400, "error.null.epic")
    assert_error(
        lambda: md.search_markets(None, "SILVER,NOPE", WEDNESDAY), 404, "error.not-found.epic"
    )
    with pytest.raises(ValueError):
        md.search_markets(None, None, WEDNESDAY, markets_without_params="maybe")


def test_market_navigation(md: MarketData) -> None:
    top = md.market_navigation(None, None, WEDNESDAY)
    ids = [n["id"] for n in top["nodes"]]
    assert set(top) == {"nodes"} and "hierarchy_v1.commons_group" in ids and len(ids) == 7
    sub = md.market_navigation("hierarchy_v1.commodities_group", None, WEDNESDAY)
    assert set(sub) == {"nodes"} and sub["nodes"][0]["id"] == "hierarchy_v1.commodities"
    leaf = md.market_navigation("hierarchy_v1.commodities", "2", WEDNESDAY)
    assert leaf["nodes"] == [] and [m["epic"] for m in leaf["markets"]] == ["NATURALGAS", "SILVER"]
    assert len(md.market_navigation("hierarchy_v1.commodities", "500", WEDNESDAY)["markets"]) == 4
    # Every node is reachable from the top, and every leaf lists known epics.
    seen, todo = set(), list(ids)
    while todo:
        node = todo.pop()
        seen.add(node)
        body = md.market_navigation(node, None, WEDNESDAY)
        todo += [n["id"] for n in body["nodes"]]
        assert all(m["epic"] in INSTRUMENTS for m in body.get("markets", []))
    assert len(seen) == 16
    for bad in ("0", "501", "-1", "abc", "", "2.0", "\u0661"):
        assert_error(
            lambda bad=bad: md.market_navigation("hierarchy_v1.commodities", bad, WEDNESDAY),
            400,
            "error.invalid.limit",
        )
    assert_error(
        lambda: md.market_navigation("hierarchy_v1.nope", None, WEDNESDAY),
        404,
        "error.not-found.nodeId",
    )


# -- sentiment, watchlists, preferences -------------------------------------------------------


def test_client_sentiment(md: MarketData) -> None:
    now = WEDNESDAY
    body = md.client_sentiment("SILVER,NATURALGAS", now)
    assert [s["marketId"] for s in body["clientSentiments"]] == ["SILVER", "NATURALGAS"]
    for epic in INSTRUMENTS:
        one = md.client_sentiment_one(epic, now)
        long, short = dec(one["longPositionPercentage"]), dec(one["shortPositionPercentage"])
        assert long + short == 100 and 5 <= long <= 95
        assert long.as_tuple().exponent >= -2 and short.as_tuple().exponent >= -2
        assert one == MarketData(42).client_sentiment_one(epic, now)
    assert [MarketData(1).client_sentiment_one(e, now) for e in INSTRUMENTS] != [
        MarketData(2).client_sentiment_one(e, now) for e in INSTRUMENTS
    ]
    assert body["clientSentiments"][0] == md.client_sentiment_one("SILVER", now)
    assert_error(lambda: md.client_sentiment("NOTFOUND", now), 404, "error.not-found.epic")
    assert_error(lambda: md.client_sentiment("SILVER,NOTFOUND", now), 404, "error.not-found.epic")
    assert_error(lambda: md.client_sentiment_one("NOTFOUND", now), 404, "error.not-found.epic")
    assert_error(lambda: md.client_sentiment(None, now), 400, "error.null.marketIds")
    assert_error(lambda: md.client_sentiment("", now), 400, "error.null.marketIds")


def test_client_sentiment_moves_with_time_and_holds_within_a_minute(md: MarketData) -> None:
    minute = WEDNESDAY.replace(second=0, microsecond=0)
    first = md.client_sentiment_one("GOLD", minute)
    assert md.client_sentiment_one("GOLD", minute + timedelta(seconds=59)) == first
    hourly = [
        md.client_sentiment_one("GOLD", minute + timedelta(hours=h))["longPositionPercentage"]
        for h in range(48)
    ]
    assert len(set(hourly)) > 24  # it moves through the days, not once in a while
    steps = [abs(dec(b) - dec(a)) for a, b in itertools.pairwise(hourly)]
    assert max(steps) < 15  # and smoothly: no jump across the range within an hour


def test_watchlists(md: MarketData) -> None:
    lists = md.watchlists()["watchlists"]
    assert [w["id"] for w in lists] == ["123456", "123457"]
    assert lists[0] == {
        "id": "123456", "name": "Hello world", "editable": True, "deleteable": True,
        "defaultSystemWatchlist": False,
    }  # fmt: skip
    one = md.watchlist("123456", WEDNESDAY)
    assert [m["epic"] for m in one["markets"]] == ["SILVER", "NATURALGAS"]
    assert_error(lambda: md.watchlist("00001", WEDNESDAY), 404, "error.invalid.watchlist")
    mine = (*WATCHLISTS, Watchlist("123458", "mine", ("AAPL",)))
    assert md.watchlists(mine)["watchlists"][-1]["name"] == "mine"
    assert md.watchlist("123458", WEDNESDAY, lists=mine)["markets"][0]["epic"] == "AAPL"


def test_account_preferences(md: MarketData) -> None:
    body = md.account_preferences()
    assert body["hedgingMode"] is False
    assert list(body["leverages"]) == [
        "SHARES", "CURRENCIES", "INDICES", "CRYPTOCURRENCIES", "COMMODITIES",
    ]  # fmt: skip
    assert body["leverages"]["SHARES"] == {"current": 2, "available": [1, 2, 3, 5]}
    changed = md.account_preferences({"SHARES": 5}, hedging_mode=True)
    assert changed["hedgingMode"] is True and changed["leverages"]["SHARES"]["current"] == 5
    assert md.account_preferences()["leverages"]["SHARES"]["current"] == 2


# -- vendor examples --------------------------------------------------------------------------


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", type(None): "null", list: "array", dict: "object"}[type(value)]


def structure_problems(vendor: Any, ours: Any, path: str = "$") -> list[str]:
    """Where `ours` lacks a key the vendor example has, or holds another JSON type there.
    Extra keys are allowed; lists are compared by their first element."""
    if json_type(vendor) != json_type(ours):
        return [f"{path}: vendor {json_type(vendor)}, ours {json_type(ours)}"]
    if isinstance(vendor, dict):
        problems = []
        for key, value in vendor.items():
            if key not in ours:
                problems.append(f"{path}.{key}: missing")
            else:
                problems += structure_problems(value, ours[key], f"{path}.{key}")
        return problems
    if isinstance(vendor, list) and vendor:
        if not ours:
            return [f"{path}: vendor has elements, ours is empty"]
        return structure_problems(vendor[0], ours[0], f"{path}[0]")
    return []


VENDOR_NOW = WEDNESDAY
REPLAY = {
    "Account preferences": lambda m, q, v: m.account_preferences(),
    "All top-level market categories": lambda m, q, v: m.market_navigation(
        None, q.get("limit"), VENDOR_NOW
    ),
    "All category sub-nodes": lambda m, q, v: m.market_navigation(
        v["nodeId"], q.get("limit"), VENDOR_NOW
    ),
    # The collection predates 2023-08, when a bare GET /markets still answered error.null.epic.
    "Markets details": lambda m, q, v: m.search_markets(
        q.get("searchTerm"), q.get("epics"), VENDOR_NOW, markets_without_params="error"
    ),
    "Single market details": lambda m, q, v: m.market_details(v["epic"], VENDOR_NOW),
    "Historical prices": lambda m, q, v: m.prices(
        v["epic"], q.get("resolution"), q.get("max"), q.get("from"), q.get("to"), VENDOR_NOW
    ),
    "Client sentiment for markets": lambda m, q, v: m.client_sentiment(
        q.get("marketIds"), VENDOR_NOW
    ),
    "Client sentiment for market": lambda m, q, v: m.client_sentiment_one(
        v["marketId"], VENDOR_NOW
    ),
    "All watchlists": lambda m, q, v: m.watchlists(),
    "Single watchlist": lambda m, q, v: m.watchlist(v["watchlistId"], VENDOR_NOW),
}


def vendor_items() -> list[dict[str, Any]]:
    """Every request of the collection, folders flattened; empty when it is absent."""
    if not COLLECTION.exists():
        return []

    def walk(items: list[dict[str, Any]]) -> Any:
        for item in items:
            yield from walk(item["item"]) if "item" in item else [item]

    return list(walk(json.loads(COLLECTION.read_text())["item"]))


def vendor_examples() -> list[Any]:
    if not COLLECTION.exists():
        return [pytest.param(None, id="vendor-collection-absent")]
    return [
        pytest.param((item["name"], response), id=f"{item['name']}: {response['name']}")
        for item in vendor_items()
        if item["name"] in REPLAY
        for response in item.get("response", [])
    ]


@pytest.mark.vendor
@pytest.mark.parametrize("case", vendor_examples())
def test_vendor_example(md: MarketData, case: Any) -> None:
    if case is None:
        pytest.skip(f"vendor Postman collection not found at {COLLECTION}")
    name, response = case
    url = response["originalRequest"]["url"]
    query = {q["key"]: q.get("value") or "" for q in url.get("query", []) if not q.get("disabled")}
    variables = {v["key"]: v["value"] for v in url.get("variable", [])}
    expected = json.loads(response["body"])
    if response["code"] == 200:
        ours = json.loads(json.dumps(REPLAY[name](md, query, variables)))
        assert structure_problems(expected, ours) == []
    else:
        error = api_error(lambda: REPLAY[name](md, query, variables))
        assert (error.status, error.error_code) == (response["code"], expected["errorCode"])


def test_vendor_examples_cover_every_replayed_endpoint() -> None:
    if not COLLECTION.exists():
        pytest.skip(f"vendor Postman collection not found at {COLLECTION}")
    names = {p.values[0][0] for p in vendor_examples()}
    assert names == set(REPLAY)


def test_structure_check_finds_differences() -> None:
    vendor = {"a": 1, "b": [{"c": "x"}], "d": True}
    assert (
        structure_problems(vendor, {"a": 2.5, "b": [{"c": "y", "z": 0}], "d": False, "e": 0}) == []
    )
    assert structure_problems(vendor, {"b": [{"c": 1}], "d": 1}) == [
        "$.a: missing",
        "$.b[0].c: vendor string, ours number",
        "$.d: vendor boolean, ours number",
    ]
    assert structure_problems(vendor, {"a": 1, "b": [], "d": True}) == [
        "$.b: vendor has elements, ours is empty"
    ]


@pytest.mark.vendor
def test_market_item_covers_the_position_and_order_market_blocks(md: MarketData) -> None:
    bodies = {
        item["name"]: json.loads(item["response"][0]["body"])
        for item in vendor_items()
        if item["name"] in ("All positions", "All working orders")
    }
    if not bodies:
        pytest.skip(f"vendor Postman collection not found at {COLLECTION}")
    blocks = [p["market"] for p in bodies["All positions"]["positions"]]
    blocks += [o["marketData"] for o in bodies["All working orders"]["workingOrders"]]
    for block in blocks:
        ours = json.loads(json.dumps(md.market_item(block["epic"], VENDOR_NOW)))
        assert structure_problems(block, ours) == []
