"""The simulator's price stream over a real WebSocket on loopback (reference §11)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from ledger_etl.simulator import Clock, SimulatorConfig, SimulatorServer, WorldConfig
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, STREAM_WORLD_START, TEST_NOW

EPICS_12 = ["GOLD", "SILVER", "OIL_CRUDE", "NATURALGAS", "EURUSD", "GBPUSD", "USDJPY",
            "US500", "DE40", "AAPL", "TSLA", "BTCUSD"]  # fmt: skip


def start_server(rate: float = 60.0, **overrides: Any) -> SimulatorServer:
    config = SimulatorConfig(world=WorldConfig(seed=42, start=STREAM_WORLD_START)).with_overrides(
        stream_tick_seconds=0.05, rate_limit_per_second=0, **overrides
    )
    return SimulatorServer(config, clock=Clock(TEST_NOW, rate=rate)).start()


@pytest.fixture
def server() -> Iterator[SimulatorServer]:
    srv = start_server()
    yield srv
    srv.stop()


def login(srv: SimulatorServer) -> tuple[dict[str, Any], dict[str, str]]:
    response = httpx.post(
        srv.url + "/api/v1/session",
        json={"identifier": IDENTIFIER, "password": PASSWORD},
        headers={"X-CAP-API-KEY": API_KEY},
    )
    assert response.status_code == 200
    return response.json(), {
        "cst": response.headers["CST"],
        "securityToken": response.headers["X-SECURITY-TOKEN"],
    }


async def send(ws: ClientConnection, tokens: dict[str, str], dest: str, cid: Any, **payload: Any):
    await ws.send(json.dumps({"destination": dest, "correlationId": cid, **tokens,
                              "payload": payload}))  # fmt: skip


async def next_frame(ws: ClientConnection, destination: str, timeout: float = 5.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("destination") == destination:
                return frame


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_session_advertises_own_streaming_host(server: SimulatorServer) -> None:
    body, _ = login(server)
    assert body["streamingHost"] == f"ws://127.0.0.1:{server.port}/"


def test_acks_echo_destination_and_correlation_id(server: SimulatorServer) -> None:
    body, tokens = login(server)

    async def scenario() -> None:
        async with connect(body["streamingHost"] + "connect") as ws:
            await send(ws, tokens, "marketData.subscribe", 1, epics=["GOLD", "NOPE"])
            ack = await next_frame(ws, "marketData.subscribe")
            assert ack == {"status": "OK", "destination": "marketData.subscribe",
                           "correlationId": "1",
                           "payload": {"subscriptions": {"GOLD": "PROCESSED",
                                                         "NOPE": "NOT_FOUND"}}}  # fmt: skip
            await send(ws, tokens, "ping", "5")
            assert await next_frame(ws, "ping") == {
                "status": "OK",
                "destination": "ping",
                "correlationId": "5",
                "payload": {},
            }
            quote = await next_frame(ws, "quote")
            p = quote["payload"]
            assert p["epic"] == "GOLD" and p["product"] == "CFD"
            spread = Decimal(str(p["ofr"])) - Decimal(str(p["bid"]))
            assert spread == Decimal("0.30")
            await send(ws, tokens, "OHLCMarketData.subscribe", "x", epics=["GOLD"],
                       resolutions=["MINUTE", "MINUTE_5"], type="heikin-ashi")  # fmt: skip
            ack = await next_frame(ws, "OHLCMarketData.subscribe")
            assert ack["payload"]["subscriptions"] == {
                "GOLD:MINUTE:heikin-ashi": "PROCESSED",
                "GOLD:MINUTE_5:heikin-ashi": "PROCESSED",
            }
            await send(ws, tokens, "OHLCMarketData.unsubscribe", 7, epics=["GOLD"],
                       types=["heikin-ashi"], resolutions=["MINUTE_5"])  # fmt: skip
            ack = await next_frame(ws, "OHLCMarketData.unsubscribe")
            assert ack["correlationId"] == "7"
            assert ack["payload"]["subscriptions"] == {"GOLD:MINUTE_5:heikin-ashi": "PROCESSED"}

    run(scenario())


def test_ohlc_events_equal_truth_bid_and_ask(server: SimulatorServer) -> None:
    body, tokens = login(server)
    seen: dict[tuple[int, str], dict] = {}

    async def scenario() -> None:
        async with connect(body["streamingHost"] + "connect") as ws:
            await send(ws, tokens, "OHLCMarketData.subscribe", 1, epics=["EURUSD"])
            while len(seen) < 6:
                frame = await next_frame(ws, "ohlc.event")
                p = frame["payload"]
                assert p["type"] == "classic" and p["resolution"] == "MINUTE"
                seen[(p["t"], p["priceType"])] = p

    run(scenario())
    first = min(t for t, _ in seen) // 1000
    truth = httpx.get(
        server.url + "/_sim/truth/bars",
        params={"epic": "EURUSD", "from": datetime.fromtimestamp(first, UTC).isoformat()},
    ).json()["bars"]
    by_time = {int(datetime.fromisoformat(b["t"]).timestamp()) * 1000: b for b in truth}
    assert {side for _, side in seen} == {"bid", "ask"}
    for (t, side), p in seen.items():
        want = by_time[t][side]
        for k in "ohlc":
            assert Decimal(str(p[k])) == Decimal(want[k]), (t, side, k)


def test_forty_epic_limit_and_bad_requests(server: SimulatorServer) -> None:
    body, tokens = login(server)

    async def scenario() -> None:
        async with connect(body["streamingHost"] + "connect") as ws:
            await ws.send("{not json")
            frame = await next_frame(ws, None)
            assert frame["status"] == "ERROR"
            assert frame["payload"]["errorCode"] == "error.malformed.message"
            await send(ws, {"cst": "x", "securityToken": "y"}, "ping", 2)
            frame = await next_frame(ws, "ping")
            assert frame["status"] == "ERROR" and frame["correlationId"] == "2"
            assert frame["payload"]["errorCode"] == "error.invalid.session.token"
            await send(ws, tokens, "OHLCMarketData.subscribe", 3, epics=["GOLD"],
                       resolutions=["SECOND"])  # fmt: skip
            frame = await next_frame(ws, "OHLCMarketData.subscribe")
            assert frame["payload"]["errorCode"] == "error.invalid.resolution"

    run(scenario())


def test_limit_of_epics_per_connection() -> None:
    srv = start_server(stream_max_epics=5)
    try:
        body, tokens = login(srv)

        async def scenario() -> None:
            async with connect(body["streamingHost"] + "connect") as ws:
                await send(ws, tokens, "marketData.subscribe", 1, epics=EPICS_12[:5])
                assert (await next_frame(ws, "marketData.subscribe"))["status"] == "OK"
                await send(ws, tokens, "OHLCMarketData.subscribe", 2, epics=EPICS_12[5:6])
                frame = await next_frame(ws, "OHLCMarketData.subscribe")
                assert frame["status"] == "ERROR"
                assert frame["payload"]["errorCode"] == "error.too-many.epics"

        run(scenario())
    finally:
        srv.stop()


def test_session_expiry_sends_error_frame(server: SimulatorServer) -> None:
    body, tokens = login(server)

    async def scenario() -> None:
        async with connect(body["streamingHost"] + "connect") as ws:
            await send(ws, tokens, "marketData.subscribe", 1, epics=["BTCUSD"])
            await next_frame(ws, "quote")
            httpx.post(server.url + "/_sim/sessions/expire")
            frame = await next_frame(ws, "session")
            assert frame["status"] == "ERROR"
            assert frame["payload"]["errorCode"] == "error.invalid.session.token"

    run(scenario())


def test_error_code_at_top_level_when_configured() -> None:
    srv = start_server(stream_error_code_at="top")
    try:
        body, _ = login(srv)

        async def scenario() -> None:
            async with connect(body["streamingHost"] + "connect") as ws:
                await send(ws, {"cst": "x", "securityToken": "y"}, "ping", 9)
                frame = await next_frame(ws, "ping")
                assert frame["errorCode"] == "error.invalid.session.token"
                assert frame["payload"] == {}

        run(scenario())
    finally:
        srv.stop()


def test_account_switch_kills_stream(server: SimulatorServer) -> None:
    body, tokens = login(server)
    other = next(a["accountId"] for a in body["accounts"] if not a["preferred"])

    async def scenario() -> None:
        async with connect(body["streamingHost"] + "connect") as ws:
            await send(ws, tokens, "marketData.subscribe", 1, epics=["BTCUSD"])
            await next_frame(ws, "quote")
            headers = {"CST": tokens["cst"], "X-SECURITY-TOKEN": tokens["securityToken"]}
            answer = await asyncio.to_thread(
                httpx.put, server.url + "/api/v1/session", json={"accountId": other},
                headers=headers,
            )  # fmt: skip
            assert answer.status_code == 200
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

    run(scenario())


@pytest.mark.parametrize(
    ("rule", "check"),
    [
        ({"kind": "drop", "destination": "quote", "nth": [3]}, "closed"),
        ({"kind": "duplicate", "destination": "ohlc.event", "nth": [1]}, "duplicate"),
        ({"kind": "malformed", "destination": "quote", "nth": [2]}, "malformed"),
        ({"kind": "skip_ohlc", "nth": [1]}, "skipped"),
        ({"kind": "early_ohlc", "nth": [1]}, "early"),
        ({"kind": "stall", "nth": [3]}, "stall"),  # the frame after the two acks
        ({"kind": "slow_consumer", "nth": [4]}, "closed"),
    ],
)
def test_stream_faults(server: SimulatorServer, rule: dict, check: str) -> None:
    assert httpx.put(server.url + "/_sim/faults", json={"stream": [rule]}).status_code == 200
    body, tokens = login(server)
    texts: list[str] = []

    async def scenario() -> None:
        async with connect(body["streamingHost"] + "connect") as ws:
            await send(ws, tokens, "marketData.subscribe", 1, epics=["BTCUSD"])
            await send(ws, tokens, "OHLCMarketData.subscribe", 2, epics=["BTCUSD"])
            try:
                async with asyncio.timeout(3.5):  # a little over three simulated minutes
                    while True:
                        texts.append(await ws.recv())
            except (TimeoutError, ConnectionClosed):
                pass

    run(scenario())
    frames = [json.loads(t) for t in texts if _is_json(t)]
    events = [f["payload"] for f in frames if f.get("destination") == "ohlc.event"]
    keys = [(e["t"], e["priceType"]) for e in events]
    quotes = [f for f in frames if f.get("destination") == "quote"]
    if check == "closed":
        assert len(quotes) < 10
    elif check == "duplicate":
        assert len(keys) > len(set(keys))
    elif check == "malformed":
        assert any(not _is_json(t) for t in texts)
    elif check == "skipped":
        asks, bids = [k for k in keys if k[1] == "ask"], [k for k in keys if k[1] == "bid"]
        assert len(bids) == len(asks) - 1 and bids[0][0] > asks[0][0], keys
    elif check == "early":
        # the event of the following bar arrives while it still forms: twice, once cut short
        first_bid = keys[0][0]
        later = [e for e in events if e["t"] == first_bid + 60_000 and e["priceType"] == "bid"]
        assert len(later) == 2 and later[0] != later[1]
    elif check == "stall":  # nothing after the acks, and no close either
        assert [f["destination"] for f in frames] == [
            "marketData.subscribe", "OHLCMarketData.subscribe"]  # fmt: skip


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
