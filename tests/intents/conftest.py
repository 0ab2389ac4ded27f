"""Fixtures for trade intents: the simulator over HTTP, a ledger on each backend, and the
intents service (webhook + executor) on loopback in front of them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from ledger_etl.capital import CapitalClient
from ledger_etl.intents.runner import IntentsService, Options, build
from ledger_etl.ledger.db import upgrade
from ledger_etl.simulator import SimulatorServer
from tests.conftest import API_KEY, IDENTIFIER, PASSWORD, make_server

SECRET = "s3cret-for-tests-0123456789"


@pytest.fixture(scope="module")
def intents_sim() -> Iterator[SimulatorServer]:
    """One demo simulator per module (a login costs seconds); tests count orders by difference
    and remove the faults they set."""
    server = make_server(rate_limit_per_second=0, demo=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broker_client(intents_sim: SimulatorServer) -> Iterator[CapitalClient]:
    with CapitalClient(intents_sim.url, API_KEY, IDENTIFIER, PASSWORD, rate_limit=200) as client:
        yield client


@pytest.fixture(scope="module")
def account_id(broker_client: CapitalClient) -> str:
    return broker_client.accounts()[0].account_id


@pytest.fixture
def intents_db(ledger_engine: Engine) -> Engine:
    upgrade(ledger_engine)
    return ledger_engine


class Running:
    def __init__(self, service: IntentsService) -> None:
        self.service = service
        self.http = httpx.Client(base_url=service.url, timeout=30)

    def post(self, body: Any, **kw: Any) -> httpx.Response:
        return self.http.post("/intents", json=body, **kw)

    def get(self, intent_id: str) -> httpx.Response:
        return self.http.get(f"/intents/{intent_id}", headers={"Authorization": f"Bearer {SECRET}"})

    def stop(self) -> None:
        self.http.close()
        self.service.stop()


@pytest.fixture
def start_service(
    intents_db: Engine, broker_client: CapitalClient
) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(executor: bool = True, **options: Any) -> Running:
        options.setdefault("live", True)
        ctx, worker = build(intents_db, broker_client, Options(SECRET, **options))
        running = Running(IntentsService(ctx, worker).start(executor=executor))
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


def set_faults(sim: SimulatorServer, rules: list[dict[str, Any]]) -> None:
    response = httpx.put(f"{sim.url}/_sim/faults", json={"rules": rules}, timeout=10)
    assert response.status_code == 200, response.text


def clear_faults(sim: SimulatorServer) -> None:
    httpx.delete(f"{sim.url}/_sim/faults", timeout=10)


def wait_final(running: Running, intent_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The intent once it is ACCEPTED, REJECTED or DRY_RUN (UNKNOWN may still resolve)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        body = running.get(intent_id).json()
        if body["state"] in ("ACCEPTED", "REJECTED", "DRY_RUN") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def intent(account: str, **fields: Any) -> dict[str, Any]:
    body = {"secret": SECRET, "account": account, "epic": "GOLD", "action": "buy", "size": 1}
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def orders_posted(sim: SimulatorServer) -> int:
    """Orders the simulator dealt from a POST /positions or /workingorders: their confirms
    (an `o_` reference that opened, netted or created something), wherever the answer went."""
    book = sim.simulator.world.book
    with book.lock:
        bodies = [c["body"] for ref, c in book.confirms.items() if ref.startswith("o_")]
    return sum(
        1
        for b in bodies
        if b.get("dealStatus") == "ACCEPTED" and b.get("status") not in ("AMENDED", "DELETED")
    )
