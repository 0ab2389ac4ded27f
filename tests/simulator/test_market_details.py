"""Market details for trading: instrument, dealing rules and a snapshot consistent with /prices
and /positions; FX markets to convert every account currency."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import ApiSession

FX = ("EURUSD", "GBPUSD", "USDJPY", "USDCHF", "EURGBP")


def test_details_carry_margin_and_distance_rules(shared_api: ApiSession) -> None:
    details = shared_api.get("/markets/GOLD").json()
    inst, rules = details["instrument"], details["dealingRules"]
    assert (inst["marginFactor"], inst["marginFactorUnit"]) == (5, "PERCENTAGE")
    assert inst["lotSize"] == 1 and inst["currency"] == "USD" and inst["type"] == "COMMODITIES"
    for key in ("minStopOrProfitDistance", "maxStopOrProfitDistance", "minGuaranteedStopDistance",
                "minDealSize", "maxDealSize", "minSizeIncrement", "minStepDistance"):  # fmt: skip
        assert set(rules[key]) == {"unit", "value"} and rules[key]["unit"] in (
            "POINTS",
            "PERCENTAGE",
        )


def test_snapshot_quote_equals_the_latest_price_bar_and_positions(shared_api: ApiSession) -> None:
    for epic in ("GOLD", "EURUSD", "BTCUSD"):
        snapshot = shared_api.get(f"/markets/{epic}").json()["snapshot"]
        bars = shared_api.get(f"/prices/{epic}", resolution="MINUTE", max=1).json()["prices"]
        assert snapshot["marketStatus"] == "TRADEABLE"
        assert (snapshot["bid"], snapshot["offer"]) == (
            bars[-1]["closePrice"]["bid"], bars[-1]["closePrice"]["ask"],
        )  # fmt: skip
    for item in shared_api.get("/positions").json()["positions"]:
        market = item["market"]
        snapshot = shared_api.get(f"/markets/{market['epic']}").json()["snapshot"]
        assert (market["bid"], market["offer"]) == (snapshot["bid"], snapshot["offer"])


def test_batch_details_for_up_to_50_epics_include_the_fx_markets(shared_api: ApiSession) -> None:
    answer = shared_api.get("/markets", epics=",".join(("GOLD", *FX))).json()["marketDetails"]
    assert [d["instrument"]["epic"] for d in answer] == ["GOLD", *FX]
    for item in answer[1:]:
        assert item["instrument"]["type"] == "CURRENCIES"
        assert item["instrument"]["currency"] == item["instrument"]["epic"][3:]
    single = shared_api.get("/markets/EURUSD").json()
    assert answer[1]["snapshot"]["bid"] == single["snapshot"]["bid"]


def test_upl_converts_with_the_fx_mid_of_the_instant(shared_api: ApiSession) -> None:
    """A position's upl = (closing price - level) x size, negated for SELL, converted to the
    account's currency at the FX mid: checked on the EUR account, where EURUSD's spread is an
    even number of ticks so the mid is exactly (bid + offer) / 2."""
    accounts = shared_api.accounts()
    eur = next(a for a in accounts if a["currency"] == "EUR")
    start = shared_api.get("/session").json()["accountId"]
    shared_api.switch(eur["accountId"])
    try:
        snap = shared_api.get("/markets/EURUSD").json()["snapshot"]
        mid = (Decimal(str(snap["bid"])) + Decimal(str(snap["offer"]))) / 2
        checked = 0
        for item in shared_api.get("/positions").json()["positions"]:
            position, market = item["position"], item["market"]
            details = shared_api.get(f"/markets/{market['epic']}").json()["instrument"]
            if details["currency"] != "USD":
                continue  # only USD instruments convert through EURUSD alone
            side = market["bid"] if position["direction"] == "BUY" else market["offer"]
            move = (Decimal(str(side)) - Decimal(str(position["level"]))) * Decimal(
                str(position["size"])
            )
            if position["direction"] == "SELL":
                move = -move
            assert Decimal(str(position["upl"])) == (move / mid).quantize(Decimal("0.01"))
            checked += 1
        assert checked >= 1
    finally:
        shared_api.switch(start)
