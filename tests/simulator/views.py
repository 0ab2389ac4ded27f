"""The four views of one account, read over HTTP, and what the history says they should be."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.conftest import ApiSession

HORIZON = timedelta(days=9)  # no scripted deal lives longer than this (events.HORIZON_DAYS + 1)


def wire(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC)


def activity(api: ApiSession, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Every activity row in [start, end), in one-day windows (the simulator must run with
    half-open bounds so a boundary row comes back once)."""
    rows: list[dict[str, Any]] = []
    cursor = start
    while cursor < end:
        upper = min(cursor + timedelta(days=1), end)
        answer = api.get(
            "/history/activity", detailed="true", **{"from": wire(cursor), "to": wire(upper)}
        )
        assert answer.status_code == 200, answer.text
        rows += answer.json()["activities"]
        cursor = upper
    return rows


def transactions(api: ApiSession, start: datetime, end: datetime) -> list[dict[str, Any]]:
    answer = api.get("/history/transactions", **{"from": wire(start), "to": wire(end)})
    assert answer.status_code == 200, answer.text
    return answer.json()["transactions"]  # type: ignore[no-any-return]


def replay(rows: list[dict[str, Any]], at: datetime) -> dict[str, Any]:
    """Open positions (dealId → remaining size, stop) and working orders from activity up to
    `at`, and the (dealId, time) of every close."""
    positions: dict[str, Decimal] = {}
    stops: dict[str, float | None] = {}
    orders: set[str] = set()
    closes: Counter[tuple[str, str]] = Counter()
    for row in sorted(rows, key=lambda r: parse(r["dateUTC"])):
        if parse(row["dateUTC"]) > at:
            continue
        deal, details = row["dealId"], row["details"]
        if row["type"] == "POSITION" and row["status"] == "ACCEPTED":
            for action in details.get("actions", []):
                kind, size = action["actionType"], Decimal(str(details["size"]))
                if kind == "POSITION_OPENED":
                    positions[deal] = size
                    stops[deal] = details.get("stopLevel")
                elif kind == "POSITION_PARTIALLY_CLOSED":
                    if deal in positions:  # else opened before the rows read
                        positions[deal] -= size
                    closes[(deal, row["dateUTC"])] += 1
                elif kind == "POSITION_CLOSED":
                    positions.pop(deal, None)
                    closes[(deal, row["dateUTC"])] += 1
        elif row["type"] == "EDIT_STOP_AND_LIMIT" and row["status"] == "MODIFIED":
            stops[deal] = details.get("stopLevel")
        elif row["type"] == "WORKING_ORDER":
            if row["status"] == "CREATED":
                orders.add(deal)
            elif row["status"] in ("EXECUTED", "CANCELLED", "EXPIRED"):
                orders.discard(deal)
    return {"positions": positions, "stops": stops, "orders": orders, "closes": closes}


def live(api: ApiSession) -> dict[str, Any]:
    """What /positions and /workingorders show now."""
    positions = api.get("/positions").json()["positions"]
    orders = api.get("/workingorders").json()["workingOrders"]
    return {
        "positions": {
            p["position"]["dealId"]: Decimal(str(p["position"]["size"])) for p in positions
        },
        "stops": {p["position"]["dealId"]: p["position"].get("stopLevel") for p in positions},
        "orders": {o["workingOrderData"]["dealId"] for o in orders},
    }


def assert_views_agree(
    api: ApiSession, at: datetime, acts: list[dict[str, Any]], txs: list[dict[str, Any]]
) -> dict[str, Any]:
    """/positions and /workingorders at `at` equal the replay of the activity up to `at`, and
    every close in the activity has its TRADE transaction (and no TRADE lacks its close)."""
    expected, seen = replay(acts, at), live(api)
    assert seen["positions"] == expected["positions"], at
    assert seen["orders"] == expected["orders"], at
    for deal, stop in seen["stops"].items():
        assert stop == expected["stops"].get(deal), (deal, at)
    trades = Counter(
        (t["dealId"], t["dateUtc"])
        for t in txs
        if t["transactionType"] == "TRADE" and parse(t["dateUtc"]) <= at
    )
    assert trades == expected["closes"], at
    return seen
