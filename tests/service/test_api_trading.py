"""`/api/exposure`, `/api/orders` and `/api/prices/{epic}/bars` over real HTTP on both
backends: the same JSON as the CLI for the same stored data, roles and scope, bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from ledger_etl.ledger import schema as s
from tests.service.test_pages import signed_in
from tests.service.trading_world import BARS, Trading, start_trading

BAR_PARAMS = {"resolution": "MINUTE", "from": BARS[5], "to": BARS[7]}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def trading(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Trading]:
    yield from start_trading(request, tmp_path_factory.mktemp(f"trading-{request.param}"))


def test_exposure_is_the_cli_report(trading: Trading) -> None:
    want = trading.cli_json("exposure", "--account", trading.account)
    for user in ("rita", "root"):
        with trading.client(user) as http:
            got = http.get("/api/exposure", params={"account": trading.account})
            assert got.status_code == 200, got.text
            assert got.json() == want
    assert want["positions"], "the simulated account holds positions"
    assert all(isinstance(p["notional"], str) for p in want["positions"])  # exact strings
    at = want["as_of"]
    with trading.client("rita") as http:
        same = http.get("/api/exposure", params={"account": trading.account, "at": at})
        assert same.json() == want
        before = http.get("/api/exposure", params={"account": trading.account, "at": "2000-01-01"})
        assert before.status_code == 404 and "no complete snapshot" in before.json()["detail"]


def test_orders_are_the_cli_rows_and_filter_by_state(trading: Trading) -> None:
    want = trading.cli_json("orders", "--account", trading.account)
    with trading.client("rita") as http:
        got = http.get("/api/orders", params={"account": trading.account})
        assert got.status_code == 200 and got.json() == want
        assert want["rows"], "the simulated account has working orders"
        states = {r["state"] for r in want["rows"]}
        for state in states | {"CANCELLED"}:
            one = http.get("/api/orders", params={"account": trading.account, "state": state})
            cli = trading.cli_json("orders", "--account", trading.account, "--state", state)
            assert one.json() == cli
            assert all(r["state"] == state for r in one.json()["rows"])


def test_bars_are_the_cli_json(trading: Trading) -> None:
    want = trading.cli_json("prices", "bars", *BARS)
    assert len(want) > 30
    for user in ("fay", "otto"):  # market data belongs to no account: any user reads it
        with trading.client(user) as http:
            got = http.get("/api/prices/GOLD/bars", params=BAR_PARAMS)
            assert got.status_code == 200, got.text
            assert got.json() == want
    ha = trading.cli_json("prices", "bars", *BARS, "--bar-type", "heikin-ashi")
    with trading.client("fay") as http:
        got = http.get("/api/prices/GOLD/bars", params={**BAR_PARAMS, "bar_type": "heikin-ashi"})
        assert got.json() == ha and ha != want
        assert http.get("/api/prices/SILVER/bars", params=BAR_PARAMS).json() == []


def test_out_of_scope_is_the_nonexistent_404_and_finance_is_refused(trading: Trading) -> None:
    with trading.client("otto") as http:
        for path in ("/api/exposure", "/api/orders"):
            hidden = http.get(path, params={"account": trading.account})
            missing = http.get(path, params={"account": "ACC-NOPE"})
            assert hidden.status_code == missing.status_code == 404
            assert hidden.json() == missing.json() == {"detail": "not found"}
    with trading.client("fay") as http:  # finance: 403 on any account, before any lookup
        for account in (trading.account, "ACC-NOPE"):
            refused = http.get("/api/exposure", params={"account": account})
            assert refused.status_code == 403 and "risk or admin" in refused.json()["detail"]
            assert http.get("/api/orders", params={"account": account}).status_code == 403
    with trading.client("root") as http:  # no token: 401 everywhere
        http.headers.pop("Authorization")
        for path in ("/api/exposure", "/api/orders", "/api/prices/GOLD/bars"):
            assert http.get(path, params=BAR_PARAMS).status_code == 401


BAD = [
    ("/api/exposure", {"at": "yesterday"}, 400, "at:"),
    ("/api/orders", {"at": "2026-13-40"}, 400, "at:"),
    ("/api/orders", {"state": "../x"}, 400, "state"),
    ("/api/exposure", {"account": "../../etc/passwd"}, 404, "not found"),
    ("/api/orders", {"account": "..%2F..%2Fetc"}, 404, "not found"),
    ("/api/prices/GOLD/bars", {**BAR_PARAMS, "resolution": "FORTNIGHT"}, 400, "resolution"),
    ("/api/prices/GOLD/bars", {**BAR_PARAMS, "from": "soon"}, 400, "from"),
    ("/api/prices/GOLD/bars", {**BAR_PARAMS, "from": BARS[7], "to": BARS[5]}, 400, "precede"),
    ("/api/prices/GOLD/bars", {"resolution": "MINUTE"}, 400, "from"),
    ("/api/prices/GOLD/bars", {**BAR_PARAMS, "from": "2020-01-01"}, 400, "narrow it"),
    ("/api/prices/GOLD/bars", {**BAR_PARAMS, "bar_type": "renko"}, 400, "bar_type"),
    # a decoded `/` makes a path no route matches: the plain 404 of an unknown path
    ("/api/prices/..%2F..%2Fetc%2Fpasswd/bars", BAR_PARAMS, 404, "Not Found"),
    ("/api/prices/%2E%2E/bars", BAR_PARAMS, 400, "epic"),
    ("/api/prices/GOLD%00/bars", BAR_PARAMS, 400, "epic"),
]


@pytest.mark.parametrize(("path", "params", "status", "says"), BAD)
def test_bad_parameters_are_clear_4xx(trading: Trading, path, params, status, says) -> None:
    params = {"account": trading.account, **params}
    with trading.client("root") as http:
        got = http.get(path, params=params)
    assert got.status_code == status, got.text
    assert says in got.json()["detail"]


def test_reads_are_audited_and_listed_in_openapi(trading: Trading) -> None:
    with trading.client("rita") as http:
        assert http.get("/api/exposure", params={"account": trading.account}).status_code == 200
        paths = http.get("/openapi.json").json()["paths"]
    assert {"/api/exposure", "/api/orders", "/api/prices/{epic}/bars"} <= set(paths)
    # The reads audited below are made here: the module's other tests may run elsewhere.
    hour = {"resolution": "MINUTE", "from": "2026-01-15T08:00:00Z", "to": "2026-01-15T09:00:00Z"}
    with trading.client("fay") as http:
        http.get("/api/prices/GOLD/bars", params=hour)
        assert http.get("/api/exposure", params={"account": trading.account}).status_code == 403
    with trading.client("otto") as http:
        http.get("/api/prices/GOLD/bars", params=hour)
        assert http.get("/api/orders", params={"account": trading.account}).status_code == 404
    a = s.read_audit
    with trading.engine.connect() as conn:
        rows = conn.execute(select(a).where(a.c.path.like("/api/%"))).all()
    exposure = [r for r in rows if r.path.startswith("/api/exposure") and r.user_name == "rita"]
    assert exposure and exposure[-1].account_id == trading.account
    assert exposure[-1].status == 200 and exposure[-1].outcome == "served"
    bars = [r for r in rows if r.path.startswith("/api/prices/GOLD/bars")]
    assert bars and {r.user_name for r in bars} >= {"fay", "otto"}
    refused = [r for r in rows if r.user_name == "fay" and r.path.startswith("/api/exposure")]
    assert refused and all(r.outcome == "forbidden" for r in refused)
    hidden = [r for r in rows if r.user_name == "otto" and r.path.startswith("/api/orders")]
    assert hidden and all(r.status == 404 and r.outcome == "not_found" for r in hidden)


def test_exposure_page_for_the_risk_role(trading: Trading) -> None:
    report = trading.cli_json("exposure", "--account", trading.account)
    with signed_in(trading, "rita") as http:  # type: ignore[arg-type]
        picker = http.get("/exposure")
        assert picker.status_code == 200 and 'href="/exposure"' in picker.text
        assert f'<option value="{trading.account}"' in picker.text
        shown = http.get("/exposure", params={"account": trading.account})
        assert shown.status_code == 200, shown.text
        page = shown.text
        assert report["as_of"] in page and "Risk warning:" in page
        assert '<label for="account">' in page and '<label for="at">' in page
        for p in report["positions"]:
            assert p["deal_id"] in page and p["notional"] in page
        early = http.get("/exposure", params={"account": trading.account, "at": "2000-01-01"})
        assert early.status_code == 404 and "no complete snapshot" in early.text
        bad = http.get("/exposure", params={"account": trading.account, "at": "noon"})
        assert bad.status_code == 400 and "not an ISO 8601 instant" in bad.text
    with signed_in(trading, "otto") as http:  # type: ignore[arg-type]
        assert trading.account not in http.get("/exposure").text
        hidden = http.get("/exposure", params={"account": trading.account})
        assert hidden.status_code == 404 and trading.account not in hidden.text
    with signed_in(trading, "fay") as http:  # type: ignore[arg-type]
        assert 'href="/exposure"' not in http.get("/ledger").text
        refused = http.get("/exposure", params={"account": trading.account})
        assert refused.status_code == 403 and trading.account not in refused.text
    with trading.client("rita") as http:  # a bearer token is no session: sign in first
        http.headers.pop("Authorization")
        assert http.get("/exposure").status_code == 303
