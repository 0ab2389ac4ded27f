"""Security of every read endpoint over real HTTP on both backends: authentication, scope,
path traversal, tampered files, tokens kept out of logs and the audit, no CORS."""

from __future__ import annotations

import http.client
import json
import os
import stat

import httpx
import pytest
from sqlalchemy import select

from ledger_etl.ledger import schema as s
from ledger_etl.service.app import ServiceConfig
from ledger_etl.service.auth import FailureLimiter
from ledger_etl.service.server import ServiceServer
from tests.service.conftest import Running
from tests.service.world import FIRST, SECOND

# Every API endpoint with the first account in it: each must refuse another account's user.
ENDPOINTS = (
    "/api/statements/{a}/2025-06",
    "/api/statements/{a}/2025-06/v1",
    "/api/statements/{a}/2025-06/v1/statement.csv",
    "/api/statements/{a}/2025-06/v1/statement.json",
    "/api/statements?account={a}",
    "/api/ledger/entries?account={a}",
    "/api/ledger/entries?account={a}&format=csv",
    "/api/ledger/entries?account={a}&format=xlsx",
)
UNSCOPED = ("/api/accounts", "/api/statements", "/api/audit")


@pytest.mark.parametrize("path", [*ENDPOINTS, *UNSCOPED])
def test_no_token_or_a_bad_one_is_401(service: Running, path: str) -> None:
    url = path.format(a=FIRST)
    for headers in ({}, {"Authorization": "Bearer lrs_wrong"}, {"Authorization": "Basic eDp5"}):
        response = httpx.get(service.url + url, headers=headers)
        assert response.status_code == 401, (url, headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert FIRST not in response.text


def test_another_accounts_user_gets_the_nonexistent_answer_everywhere(service: Running) -> None:
    with service.client("bob") as bob:
        assert [a["account_id"] for a in bob.get("/api/accounts").json()["accounts"]] == [SECOND]
        listed = bob.get("/api/statements").json()["statements"]
        assert {item["account_id"] for item in listed} == {SECOND}
        for path in ENDPOINTS:
            foreign = bob.get(path.format(a=FIRST))
            nowhere = bob.get(path.format(a="ACC-404"))
            assert foreign.status_code == nowhere.status_code == 404, path
            assert foreign.content == nowhere.content == b'{"detail":"not found"}'
            mine = bob.get(path.format(a=SECOND))
            assert mine.status_code == 200, (path, mine.text)


TRAVERSALS = (
    "..", "../ACC-2", "..%2FACC-2", "%2e%2e", "%2e%2e%2fACC-2", "ACC-1%2f..%2fACC-2",
    "..%5cACC-2", "%2fetc%2fpasswd", "ACC-1%00", "....//", "~", "ACC-1%20", "%c0%ae%c0%ae",
    "..%252f..%252f",
)  # fmt: skip


def raw_get(url: str, path: str, token: str) -> tuple[int, bytes]:
    """GET `path` byte for byte: no client-side normalisation of `..` or of escapes."""
    parsed = httpx.URL(url)
    conn = http.client.HTTPConnection(parsed.host, parsed.port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _refused(answer: tuple[int, bytes], secret: bytes, path: str) -> None:
    status, body = answer
    assert status in (400, 404, 405), (path, status)
    assert secret not in body and b"ACC-2" not in body and b"ACC-3" not in body


def test_path_traversal_through_every_path_and_query_parameter(service: Running) -> None:
    secret = b"outside-the-export-tree"
    (service.world.export_root.parent / "secret.txt").write_bytes(secret)
    templates = (
        "/api/statements/{x}/2025-06",
        "/api/statements/ACC-1/{x}",
        "/api/statements/ACC-1/2025-06/v{x}",
        "/api/statements/{x}/2025-06/v1/statement.csv",
        "/api/statements/ACC-1/{x}/v1/statement.csv",
        "/api/statements/ACC-1/2025-06/v{x}/statement.csv",
        "/api/statements/ACC-1/2025-06/v1/{x}",
        "/api/statements/ACC-1/2025-06/v1/{x}%2f..%2f..%2f..%2fsecret.txt",
        "/api/statements?account={x}",
        "/api/statements?month={x}",
        "/api/ledger/entries?account={x}",
        "/api/ledger/entries?account=ACC-1&from={x}",
        "/api/ledger/entries?account=ACC-1&to={x}",
        "/api/ledger/entries?account=ACC-1&type={x}",
        "/api/ledger/entries?account=ACC-1&cursor={x}",
        "/api/ledger/entries?account=ACC-1&format={x}",
        "/api/audit?user={x}",
    )
    ann = service.tokens["ann"]  # reads ACC-1 only: nothing of ACC-2 or ACC-3 may come back
    for template in templates:
        for value in TRAVERSALS:
            path = template.format(x=value)
            answer = raw_get(service.url, path, ann)
            if template.startswith("/api/audit"):
                assert answer[0] in (400, 403), path  # admins only, whatever the parameter
                status, body = raw_get(service.url, path, service.tokens["root"])
                assert status in (200, 400) and secret not in body, path
                continue
            _refused(answer, secret, path)
    # Names the manifest does not list are refused even when they exist in the folder.
    for name in ("manifest.json", "..%2fversions.json", ".publish.lock", "../../../secret.txt"):
        path = f"/api/statements/{FIRST}/2025-06/v1/{name}"
        _refused(raw_get(service.url, path, ann), secret, path)


def test_failed_authentication_is_rate_limited_per_client(service: Running) -> None:
    config = ServiceConfig(
        service.world.engine, service.world.export_root, limiter=FailureLimiter(3, 60)
    )
    with ServiceServer(config) as server:
        bad = {"Authorization": "Bearer lrs_guess"}
        codes = [httpx.get(server.url + "/api/accounts", headers=bad).status_code for _ in range(5)]
        assert codes == [401, 401, 401, 429, 429]
        good = {"Authorization": f"Bearer {service.tokens['ann']}"}
        blocked = httpx.get(server.url + "/api/accounts", headers=good)
        assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
        # The page's sign-in form counts against the same limit.
        assert httpx.post(server.url + "/signin", data={"token": "x"}).status_code in (403, 429)


def test_a_tampered_file_is_refused_audited_and_alerted(own_service: Running) -> None:
    root = own_service.world.export_root
    target = root / FIRST / "2025-06" / "v2" / "statement.csv"
    os.chmod(target, stat.S_IRUSR | stat.S_IWUSR)
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x01
    target.write_bytes(bytes(data))
    with own_service.client("ann") as ann:
        response = ann.get(f"/api/statements/{FIRST}/2025-06/v2/statement.csv")
        untouched = ann.get(f"/api/statements/{FIRST}/2025-06/v1/statement.csv")
    assert response.status_code == 500
    assert bytes(data) not in response.content and b"posted_at" not in response.content
    assert untouched.status_code == 200
    a = s.read_audit
    with own_service.world.engine.connect() as conn:
        rows = conn.execute(select(a).where(a.c.outcome == "refused_tampered")).all()
    assert len(rows) == 1 and rows[0].status == 500 and rows[0].user_name == "ann"
    assert rows[0].sha256 is None and "sha256 mismatch" in rows[0].detail
    alerts = (root / "_audit" / "alerts.jsonl").read_text().splitlines()
    alert = json.loads(alerts[-1])
    assert alert["kind"] == "tampered_file" and alert["path"] == str(target)
    assert alert["user"] == "ann" and alert["expected_sha256"] != alert["found_sha256"]
    # statement.json answers the statement routes: tampered, they refuse as well.
    doc = root / FIRST / "2025-06" / "v1" / "statement.json"
    os.chmod(doc, stat.S_IRUSR | stat.S_IWUSR)
    doc.write_bytes(doc.read_bytes().replace(b"1194.00", b"9194.00"))
    with own_service.client("ann") as ann:
        assert ann.get(f"/api/statements/{FIRST}/2025-06/v1").status_code == 500
        assert ann.get("/api/accounts").json()["accounts"][0]["account_id"] == FIRST
    with httpx.Client(base_url=own_service.url) as browser:  # the statement page refuses too
        form = browser.get("/signin").text
        csrf = form.split('name="csrf" value="')[1].split('"')[0]
        browser.post("/signin", data={"csrf": csrf, "token": own_service.tokens["ann"]})
        page = browser.get(f"/statement?account={FIRST}&month=2025-06&version=1")
        assert page.status_code == 500 and "9194.00" not in page.text
    assert len((root / "_audit" / "alerts.jsonl").read_text().splitlines()) == 3


def test_tokens_never_reach_the_logs_or_the_audit(service: Running, caplog) -> None:
    caplog.set_level("DEBUG")
    token = service.tokens["ann"]
    with service.client("ann") as ann:
        ann.get("/api/accounts")
        ann.get(f"/api/statements/{FIRST}/2025-06/v1/statement.csv")
        ann.get("/api/accounts", params={"token": token})  # a token pasted into a URL
        httpx.get(service.url + "/api/accounts", headers={"Authorization": f"Bearer {token}x"})
    with service.world.engine.connect() as conn:
        dumped = json.dumps([list(map(str, r)) for r in conn.execute(select(s.read_audit))])
        users = json.dumps([list(map(str, r)) for r in conn.execute(select(s.service_users))])
    secret_part = token.removeprefix("lrs_")
    assert secret_part not in dumped and secret_part not in users
    ours = [r.getMessage() for r in caplog.records if r.name.startswith(("uvicorn", "ledger"))]
    assert any("/api/accounts" in line for line in ours)  # the access log was captured
    assert not any(secret_part in line for line in ours)
    assert "[redacted]" in dumped


def test_no_cors_by_default(service: Running) -> None:
    origin = {"Origin": "https://evil.example"}
    with service.client("ann") as ann:
        simple = ann.get("/api/accounts", headers=origin)
        preflight = ann.options(
            "/api/accounts",
            headers={**origin, "Access-Control-Request-Method": "GET",
                     "Access-Control-Request-Headers": "authorization"},
        )  # fmt: skip
    for response in (simple, preflight):
        assert not any(h.lower().startswith("access-control-") for h in response.headers)
    assert preflight.status_code in (401, 405)
