"""Credentials and session tokens must never leak into logs, errors, reprs or fetch records."""

import base64
import json
import logging
import re
import threading
import traceback
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, quote_plus

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ledger_etl.capital import (
    TRANSACTIONS,
    AuthenticationError,
    CapitalClient,
    CapitalError,
    fetch_history,
)
from ledger_etl.capital.errors import redact
from ledger_etl.capital.ratelimit import RateLimiter

API_KEY = "APIKEY-CANARY-7f3a9d"
PASSWORD = "PASSWORD-CANARY-91c2e4"
CST = "CST-CANARY-55aa01"
SECURITY_TOKEN = "XSEC-CANARY-c0ffee"
CANARIES = (API_KEY, PASSWORD, CST, SECURITY_TOKEN)
T0 = datetime(2026, 7, 1, tzinfo=UTC)


class LeakyApi:
    """An API that misbehaves in every way the client must survive, echoing secrets freely."""

    def __init__(self) -> None:
        self.generation = 0
        self.lock = threading.Lock()
        self.script: list = []
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.bad_password = False

    def tokens(self) -> dict[str, str]:
        return {"CST": f"{CST}-{self.generation}", "X-SECURITY-TOKEN": f"{SECURITY_TOKEN}-g"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if path == "/session/encryptionKey":
            der = self.private.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            key = base64.b64encode(der).decode()
            return httpx.Response(200, json={"encryptionKey": key, "timeStamp": 1})
        if (request.method, path) == ("POST", "/session"):
            if self.bad_password:
                return httpx.Response(401, json={"errorCode": "error.invalid.details"})
            with self.lock:
                self.generation += 1
            body = {"currentAccountId": "A1", "echo": json.loads(request.content)}
            return httpx.Response(200, json=body, headers=self.tokens())
        if request.headers.get("CST") != self.tokens()["CST"]:
            return httpx.Response(401, json={"errorCode": "error.invalid.session.token"})
        if (request.method, path) == ("PUT", "/session"):
            return httpx.Response(400, json={"errorCode": "error.not-different.accountId"})
        with self.lock:
            item = self.script.pop(0) if self.script else None
        if isinstance(item, Exception):
            raise item
        if item is not None:
            return item
        if path.startswith("/history/transactions"):
            return httpx.Response(200, json={"transactions": []}, headers=self.tokens())
        return httpx.Response(200, json={"status": "OK", "cst": CST}, headers=self.tokens())


def leak_page() -> httpx.Response:
    page = f"<html>proxy error; CST={CST}; X-SECURITY-TOKEN={SECURITY_TOKEN}; key={API_KEY}</html>"
    return httpx.Response(200, text=page)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def make_client(api: LeakyApi, **kw) -> CapitalClient:
    clock = Clock()  # the 429 pause and backoff pass in simulated time
    return CapitalClient(
        "http://capital.test",
        API_KEY,
        "me@example.com",
        PASSWORD,
        transport=httpx.MockTransport(api),
        rate_limiter=RateLimiter(1000, monotonic=clock.monotonic, sleep=clock.sleep),
        login_limiter=RateLimiter(1000, monotonic=clock.monotonic, sleep=clock.sleep),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        max_attempts=3,
        **kw,
    )


def texts_of(error: BaseException) -> list[str]:
    out = [str(error), repr(error), repr(vars(error))]
    out += traceback.format_exception(error)
    for linked in (error.__cause__, error.__context__):
        if linked is not None:
            out += texts_of(linked)
    return out


@pytest.mark.parametrize("encrypted", [False, True])
def test_no_secret_reaches_logs_errors_or_records(caplog, encrypted):
    caplog.set_level(logging.DEBUG)
    api = LeakyApi()
    seen: list[str] = []
    errors: list[BaseException] = []

    with make_client(api, encrypted_password=encrypted) as client:
        client.ping()  # login + success
        with api.lock:
            api.generation += 1  # the session expires: 401, single-flight re-login, replay
        client.ping()
        api.script = [httpx.Response(503), httpx.ReadTimeout("timed out"), None]
        client.ping()  # retried 5xx and timeout
        api.script = [httpx.Response(429, json={"errorCode": "error.too-many.requests"})]
        client.ping()
        for script in (
            [leak_page()] * 3,  # malformed 200 echoing secrets
            [httpx.Response(503)] * 3,
            [httpx.ConnectError(f"boom {CST}")] * 3,  # even a transport message naming a token
            [httpx.Response(400, json={"errorCode": "error.invalid.from"})],
        ):
            api.script = list(script)
            with pytest.raises(CapitalError) as caught:
                client.request("GET", "/history/activity", expect_key="activities")
            errors.append(caught.value)
        # every window meets the page: through its attempts and the second pass over failures
        api.script = [leak_page()] * 50
        result = fetch_history(
            client, "A1", TRANSACTIONS, T0, T0 + timedelta(days=2), max_workers=1
        )
        assert result.failed and all("malformed" in f"{r.error}" for r in result.failed)
        seen += [repr(result), repr(result.records), str(result.records), repr(result.problems)]
        seen += [f"{r.error}" for r in result.records]
        seen += [repr(client), str(client.stats.snapshot()), repr(client._session)]
        seen += [repr(client._state), repr(client._state.snapshot())]

    api.bad_password = True
    with pytest.raises(AuthenticationError) as caught:
        make_client(api, encrypted_password=encrypted).login()
    errors.append(caught.value)
    for error in errors:
        seen += texts_of(error)
    seen.append(caplog.text)
    seen += [repr(vars(record)) for record in caplog.records]

    haystack = "\n".join(seen)
    assert "GET /history/activity" in haystack and "POST /session" in haystack  # logs exist
    for canary in CANARIES:
        assert canary not in haystack, canary


def spellings(secret: str) -> dict[str, str]:
    """Each way a server may write `secret` back, computed here independently of the client."""
    escaped = json.dumps(secret)[1:-1]
    return {
        "raw": secret,
        "json ascii": escaped,
        "json utf-8": json.dumps(secret, ensure_ascii=False)[1:-1],
        "json with escaped slash": escaped.replace("/", "\\/"),
        "percent-encoded": quote(secret, safe=""),
        "percent-encoded, lower-case hex": re.sub(
            r"%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe="")
        ),
        "form-encoded": quote_plus(secret, safe=""),
    }


def test_redact_masks_every_spelling_of_a_secret_and_caps_the_text():
    password = 'pa ss"wörd/+&=\\%'
    token = "CST-CANARY-55aa01"
    secrets = {password, token, f"{token}-longer", ""}  # "" must not mask everything
    for secret in (password, token):
        for name, spelling in spellings(secret).items():
            masked = redact(f"errorCode: [{spelling}] end", secrets)
            assert masked == "errorCode: [***] end", (secret, name, masked)
    # A secret that contains another is masked whole, leaving no tail behind.
    assert redact(f"old {token}-longer new {token}", secrets) == "old *** new ***"
    assert redact("nothing secret here", secrets) == "nothing secret here"

    # Masked first, then cut at 500 characters, saying so: a secret across the cut is not
    # half-kept.
    text = "x" * 498 + token + "y" * 2000
    capped = redact(text, secrets)
    assert capped[:500] == ("x" * 498 + "***" + "y" * 2000)[:500]
    assert len(capped) < 560 and "cut" in capped and str(498 + 3 + 2000) in capped
    assert token[:4] not in capped
    short = "z" * 500
    assert redact(short, secrets) == short  # at the limit nothing is cut


def test_a_token_echoed_after_it_was_replaced_is_still_masked():
    api = LeakyApi()
    with make_client(api) as client:
        client.ping()  # session 1
        with api.lock:
            api.generation += 1  # it expires; the client logs in again and replays
        client.ping()
        old, current = f"{CST}-1", api.tokens()["CST"]
        assert old != current
        echo = f"echo: CST={old}; now CST={current}; X-SECURITY-TOKEN={SECURITY_TOKEN}-g"
        api.script = [httpx.Response(400, json={"errorCode": echo})]
        with pytest.raises(CapitalError) as caught:
            client.request("GET", "/history/activity", expect_key="activities")
    assert str(caught.value).endswith("echo: CST=***; now CST=***; X-SECURITY-TOKEN=***")


def test_a_malformed_server_time_is_not_quoted_in_the_error():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"serverTime": f"echo CST={CST}"})

    client = make_client(answer)
    with pytest.raises(CapitalError) as caught:
        client.server_time()
    client.close()
    assert "serverTime is not an integer" in str(caught.value)
    assert not [text for text in texts_of(caught.value) if CST in text]
