"""Replays the vendor's own Postman examples against the simulator over HTTP.

For each example of an endpoint the simulator implements, the request is sent as the vendor wrote
it (variables filled with the simulator's credentials, tokens and ids) and the answer must have
the example's status code, and for a 200 every key of the example's JSON with the same JSON type
(lists compared by the union of their elements' keys). The collection is vendor data kept outside
the project (../shared/vendor/capital-api-postman/); without it the test is skipped locally and
fails in CI (CI=true), where the collection is always laid beside the checkout.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, TEST_NOW, ApiSession, make_server

COLLECTION = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "vendor"
    / "capital-api-postman"
    / "capital.collection.json"
)
SIMULATED = re.compile(
    r"^/(time|ping|session(/encryptionKey)?|accounts(/preferences)?|history/(activity|transactions)"
    r"|positions(/[^/]+)?|workingorders|confirms/[^/]+|markets(/[^/]+)?|marketnavigation(/[^/]+)?"
    r"|prices/[^/]+|clientsentiment(/[^/]*)?|watchlists(/[^/]+){0,2})$"
)
READ_ONLY_PREFIXES = ("/positions", "/workingorders")
# Vendor examples dated before the simulated history: their windows are moved onto a busy day.
BUSY_DAY = {"from": "2025-06-10T00:00:00", "to": "2025-06-11T00:00:00"}
FIRST_DEPOSIT_DAY = {"from": "2025-01-01T00:00:00", "to": "2025-01-02T00:00:00"}


def _examples() -> list[dict[str, Any]]:
    if not COLLECTION.exists():
        return []
    data = json.loads(COLLECTION.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = []

    def walk(items: list[dict[str, Any]]) -> None:
        for item in items:
            if "item" in item:
                walk(item["item"])
                continue
            for response in item.get("response", []):
                request = response["originalRequest"]
                url = request["url"]
                raw = url["raw"] if isinstance(url, dict) else url
                path = re.sub(r"^(\{\{url\}\}|https://[^/]+/api/v1)", "", raw).split("?")[0]
                variables = {v["key"]: v.get("value", "") for v in url.get("variable", [])}
                path = re.sub(r":(\w+)", lambda m, v=variables: v.get(m.group(1), ""), path)
                found.append(
                    {
                        "name": f"{request['method']} {path} [{response['name']}]",
                        "method": request["method"],
                        "path": path.rstrip("/") or "/",
                        "query": {
                            q["key"]: q.get("value") or ""
                            for q in url.get("query", [])
                            if not q.get("disabled")
                        },
                        "headers": {
                            h["key"]: h["value"]
                            for h in request.get("header", [])
                            if not h.get("disabled")
                        },
                        "body": (request.get("body") or {}).get("raw"),
                        "status": response["code"],
                        "expected": json.loads(response["body"]) if response.get("body") else None,
                    }
                )

    walk(data["item"])
    return found


EXAMPLES = _examples()


def _in_scope(example: dict[str, Any]) -> bool:
    if not SIMULATED.match(example["path"]):
        return False
    if example["method"] != "GET" and example["path"].startswith(READ_ONLY_PREFIXES):
        return False  # dealing has its own cases (test_dealing): bounds follow the prices
    return True


@pytest.fixture(scope="module")
def conformance_api() -> Iterator[ApiSession]:
    # The collection predates 2023-08-04, when GET /markets without parameters began to list
    # every market; the simulator reproduces the older answer when asked to.
    server = make_server(markets_without_params="error", rate_limit_per_second=0)
    server.simulator.clock.set(_instant_with_both_order_kinds(server))
    api = ApiSession(server)
    api.login()
    yield api
    api.close()
    server.stop()


def _instant_with_both_order_kinds(server: SimulatorServer) -> datetime:
    """A moment when good-till-date and good-till-cancelled orders are both working, as in the
    vendor's example of GET /workingorders."""
    world = server.simulator.world
    instant = TEST_NOW
    for _ in range(24 * 60):
        orders = world.open_orders(0, instant)
        if (
            any(o.good_till and o.stop_distance for o in orders)
            and any(o.good_till is None for o in orders)
            and world.open_positions(0, instant)
        ):
            return instant
        instant -= timedelta(hours=1)
    raise AssertionError("no moment with both kinds of working orders in 60 days")


def _day_matching(api: ApiSession, predicate: Any) -> dict[str, str]:
    """The first day of the simulated history with an activity row satisfying `predicate`."""
    account = api.get("/session").json()["accountId"]
    rows = api.admin.get(
        "/truth/activity",
        params={"account": account, "from": "2025-01-01T00:00:00Z", "to": "2025-12-31T00:00:00Z"},
    ).json()
    for row in rows["activities"]:
        if predicate(row):
            day = datetime.fromisoformat(row["dateUTC"]).date()
            return {"from": f"{day}T00:00:00", "to": f"{day + timedelta(days=1)}T00:00:00"}
    raise AssertionError("no matching row in the simulated history")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return type(value).__name__


def structure_problems(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """Keys and JSON types of `expected` missing from `actual` (extra keys are allowed)."""
    if _json_type(expected) != _json_type(actual):
        return [f"{where}: expected {_json_type(expected)}, got {_json_type(actual)}"]
    problems: list[str] = []
    if isinstance(expected, dict):
        for key, value in expected.items():
            if key not in actual:
                problems.append(f"{where}.{key}: missing")
            else:
                problems += structure_problems(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list) and expected:
        if not actual:
            return [f"{where}: expected a non-empty list"]
        if all(isinstance(e, dict) for e in expected):
            merged_expected = _merge(expected)
            merged_actual = _merge(actual)
            problems += structure_problems(merged_expected, merged_actual, f"{where}[]")
        else:
            problems += structure_problems(expected[0], actual[0], f"{where}[0]")
    return problems


def _merge(items: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for item in items:
        for key, value in item.items():
            if key in merged and isinstance(value, dict) and isinstance(merged[key], dict):
                merged[key] = _merge([merged[key], value])
            else:
                merged.setdefault(key, value)
    return merged


def _fill(example: dict[str, Any], api: ApiSession) -> tuple[str, dict, dict, Any]:
    """The vendor request with the simulator's credentials, tokens and ids filled in."""
    path, query = example["path"], dict(example["query"])
    headers: dict[str, str] = {}
    for key, value in example["headers"].items():
        value = value.replace("{{X-CAP-API-KEY}}", API_KEY)
        value = value.replace("{{CST}}", api.tokens["CST"])
        value = value.replace("{{X-SECURITY-TOKEN}}", api.tokens["X-SECURITY-TOKEN"])
        headers[key] = value
    body = json.loads(example["body"]) if example["body"] else None
    ok = example["status"] == 200
    if isinstance(body, dict) and path == "/session" and example["method"] == "POST":
        if ok or example["status"] in (400, 429):
            body = {"identifier": IDENTIFIER, "password": PASSWORD}
    if isinstance(body, dict) and path == "/session" and example["method"] == "PUT" and ok:
        current = api.get("/session").json()["accountId"]
        body = {
            "accountId": next(a["accountId"] for a in api.accounts() if a["accountId"] != current)
        }
    if path.startswith("/history/") and ok:
        query.pop("lastPeriod", None)
        if "dealId" in query:
            query["dealId"] = _busy_deal(api)
        if "filter" in query:  # source!=DEALER;type!=POSITION;status==REJECTED;epic==OIL_CRUDE,GOLD
            query.update(
                _day_matching(
                    api,
                    lambda r: (
                        r["status"] == "REJECTED"
                        and r["type"] != "POSITION"
                        and r["epic"] in ("OIL_CRUDE", "GOLD")
                    ),
                )
            )
        else:
            query.update(FIRST_DEPOSIT_DAY if query.get("type") == "DEPOSIT" else BUSY_DAY)
    if path.startswith("/positions/") and ok:
        path = "/positions/" + api.get("/positions").json()["positions"][0]["position"]["dealId"]
    if path.startswith("/confirms/") and ok:
        path = (
            "/confirms/" + api.get("/positions").json()["positions"][0]["position"]["dealReference"]
        )
    return path, query, headers, body


def _busy_deal(api: ApiSession) -> str:
    rows = api.get("/history/activity", **BUSY_DAY).json()["activities"]
    return next(r["dealId"] for r in rows if r["type"] == "POSITION")


def require_collection() -> None:
    """Skip without the vendor collection; in CI its absence is a failure, never a skip."""
    if EXAMPLES:
        return
    reason = f"vendor collection not found at {COLLECTION}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (the conformance replay must run in CI)")
    pytest.skip(reason)


def test_the_vendor_collection_is_present() -> None:
    require_collection()
    assert len(EXAMPLES) > 0


@pytest.mark.vendor
@pytest.mark.skipif(
    not EXAMPLES and os.environ.get("CI", "").lower() != "true",
    reason=f"vendor collection not found at {COLLECTION}",
)
@pytest.mark.parametrize(
    "example",
    sorted(
        (e for e in EXAMPLES if _in_scope(e)),
        # Session changes (switching, logging out) go last so they do not disturb the others.
        key=lambda e: (
            e["path"] == "/session" and e["method"] in ("PUT", "DELETE"),
            e["method"] == "DELETE",
        ),
    ),
    ids=lambda e: e["name"],
)
def test_vendor_example(conformance_api: ApiSession, example: dict[str, Any]) -> None:
    api = conformance_api
    if example["path"] == "/session" and example["method"] == "POST":
        time.sleep(1.05)  # one login per second per key
        if example["status"] == 429:
            api.login()  # the example's request is then the second within one second
    path, query, headers, body = _fill(example, api)
    response = api.http.request(example["method"], path, params=query, headers=headers, json=body)
    if example["path"] == "/session" and example["method"] == "POST" and response.is_success:
        api.tokens = {
            "CST": response.headers["CST"],
            "X-SECURITY-TOKEN": response.headers["X-SECURITY-TOKEN"],
        }
    assert response.status_code == example["status"], response.text
    if example["expected"] is None:
        return
    answer = response.json()
    if "errorCode" in example["expected"]:
        assert answer == example["expected"]
    else:
        assert structure_problems(example["expected"], answer) == []


def test_structure_comparison_catches_differences() -> None:
    expected = {"a": 1, "b": [{"c": "x"}, {"d": True}]}
    assert structure_problems(expected, {"a": 2.5, "b": [{"c": "y", "d": False}], "e": 0}) == []
    assert structure_problems(expected, {"a": "1", "b": [{"c": "y"}]}) == [
        "$.a: expected number, got str",
        "$.b[].d: missing",
    ]
    assert structure_problems(expected, {"a": 1, "b": []}) == ["$.b: expected a non-empty list"]


def test_collection_covers_the_simulated_endpoints() -> None:
    require_collection()
    covered = {e["path"].split("/")[1] for e in EXAMPLES if _in_scope(e)}
    assert {
        "time",
        "ping",
        "session",
        "accounts",
        "history",
        "positions",
        "workingorders",
        "confirms",
        "markets",
        "prices",
        "clientsentiment",
        "watchlists",
    } <= covered
