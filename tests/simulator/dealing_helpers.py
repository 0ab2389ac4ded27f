"""Dealing over HTTP against a simulator on a frozen clock: a session that steps the clock past
the 0.1 s order spacing before each request, and market facts read from the API itself."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

import httpx

from ledger_etl.simulator import SimulatorServer
from tests.conftest import ApiSession, make_server


def dealing_server(**overrides: Any) -> SimulatorServer:
    server = make_server(
        rate_limit_per_second=0, login_rate_per_second=0, history_bounds="half-open",
        session_idle_seconds=10**9, **overrides,
    )  # fmt: skip
    server.simulator.clock.freeze()
    return server


class Dealer(ApiSession):
    def send(
        self, method: str, path: str, body: Any = None, *, step: float = 0.2
    ) -> httpx.Response:
        self.server.simulator.clock.advance(step)
        if isinstance(body, bytes):
            return self.http.request(method, path, content=body, headers=self.tokens)
        return self.http.request(method, path, json=body, headers=self.tokens)

    def confirm(self, response: httpx.Response) -> dict[str, Any]:
        assert response.status_code == 200, response.text
        answer = self.get(f"/confirms/{response.json()['dealReference']}")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def market(self, epic: str) -> dict[str, Any]:
        answer = self.get(f"/markets/{epic}")
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    def quote(self, epic: str) -> tuple[Decimal, Decimal]:
        snap = self.market(epic)["snapshot"]
        return Decimal(str(snap["bid"])), Decimal(str(snap["offer"]))

    def positions(self) -> dict[str, dict[str, Any]]:
        rows = self.get("/positions").json()["positions"]
        return {p["position"]["dealId"]: p["position"] for p in rows}

    def orders(self) -> dict[str, dict[str, Any]]:
        rows = self.get("/workingorders").json()["workingOrders"]
        return {o["workingOrderData"]["dealId"]: o["workingOrderData"] for o in rows}

    def scripted_order(self) -> dict[str, Any]:
        """A working order of the script open now, or within the next four days (the clock
        moves an hour at a time until one is)."""
        for _ in range(96):
            found = [o for o in self.orders().values() if "-54c4-" in o["dealId"]]
            if found:
                return found[0]
            self.server.simulator.clock.advance(3600)
        raise AssertionError("the script has no working order open within four days")

    def balance(self) -> Decimal:
        account = self.get("/session").json()["accountId"]
        for item in self.get("/accounts").json()["accounts"]:
            if item["accountId"] == account:
                return Decimal(str(item["balance"]["balance"]))
        raise AssertionError("no active account")


def band(details: dict[str, Any], ref: Decimal, toward: int, *, guaranteed: bool = False
         ) -> tuple[Decimal, Decimal]:  # fmt: skip
    """The allowed (low, high) of a stop (toward=-1 for a BUY) or profit, from dealingRules."""
    rules = details["dealingRules"]
    near = Decimal(
        str(
            rules["minGuaranteedStopDistance" if guaranteed else "minStopOrProfitDistance"]["value"]
        )
    )
    far = Decimal(str(rules["maxStopOrProfitDistance"]["value"]))
    tick = Decimal(str(rules["minStepDistance"]["value"]))
    near, far = ref * near / 100, ref * far / 100
    low, high = (ref + near, ref + far) if toward > 0 else (ref - far, ref - near)
    return low.quantize(tick, ROUND_CEILING), high.quantize(tick, ROUND_FLOOR)


def text(value: Decimal) -> str:
    return format(value.normalize(), "f")
