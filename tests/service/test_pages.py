"""The pages over real HTTP on both backends: sessions, CSRF, scope (no browser here)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import select

from ledger_etl.ledger import schema as s
from ledger_etl.service.users import revoke_user
from tests.service.conftest import Running
from tests.service.world import FIRST, SECOND, THIRD


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


@contextmanager
def signed_in(service: Running, user: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30) as http:
        form = http.get("/signin")
        token = service.tokens[user]
        answer = http.post("/signin", data={"csrf": _csrf(form.text), "token": token})
        assert answer.status_code == 303, answer.text
        yield http


def test_sign_in_sets_a_protected_session_cookie(service: Running) -> None:
    with httpx.Client(base_url=service.url) as http:
        assert http.get("/").headers["location"] == "/signin"
        form = http.get("/signin")
        answer = http.post(
            "/signin", data={"csrf": _csrf(form.text), "token": service.tokens["ann"]}
        )
    cookie = [
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "lrs_session" in v
    ]
    assert len(cookie) == 1
    flags = cookie[0].lower()
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert service.tokens["ann"] not in cookie[0]


def test_forms_refuse_a_missing_or_foreign_csrf_token(service: Running) -> None:
    with httpx.Client(base_url=service.url) as http:
        form = http.get("/signin")
        token = service.tokens["ann"]
        assert http.post("/signin", data={"token": token}).status_code == 403
        assert http.post("/signin", data={"csrf": "0" * 64, "token": token}).status_code == 403
        foreign = http.post(
            "/signin",
            data={"csrf": _csrf(form.text), "token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403 and "lrs_session" not in foreign.headers.get(
            "set-cookie", ""
        )
    a = s.read_audit
    with service.world.engine.connect() as conn:
        refused = conn.execute(
            select(a.c.status, a.c.outcome).where(a.c.path == "/signin", a.c.method == "POST")
        ).all()
    assert (403, "http_403") in [tuple(r) for r in refused]  # refused sign-ins are audited
    with signed_in(service, "ann") as http:
        page = http.get("/")
        assert http.post("/signout", data={}).status_code == 403
        assert http.post("/signout", data={"csrf": "f" * 64}).status_code == 403
        assert http.get("/").status_code == 200  # still signed in
        out = http.post("/signout", data={"csrf": _csrf(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/signin"
        assert http.get("/").status_code == 303


def test_a_user_sees_only_their_accounts_on_every_page(service: Running) -> None:
    with signed_in(service, "bob") as bob:
        pages = [bob.get(p).text for p in ("/", "/ledger", f"/ledger?account={SECOND}")]
        assert all(FIRST not in text and THIRD not in text for text in pages)
        assert SECOND in pages[0]
        for path in (
            f"/statement?account={FIRST}&month=2025-06",
            f"/statement?account={FIRST}&month=2025-06&version=1",
            f"/files/{FIRST}/2025-06/v1/statement.csv",
            f"/ledger?account={FIRST}",
            f"/exports/ledger?account={FIRST}&format=csv",
        ):
            foreign = bob.get(path)
            nowhere = bob.get(path.replace(FIRST, "ACC-404"))
            assert foreign.status_code == nowhere.status_code == 404, path
            assert foreign.text == nowhere.text
        ok = bob.get(f"/files/{SECOND}/2025-06/v1/statement.csv")
        assert ok.status_code == 200
        published = service.world.export_root / SECOND / "2025-06" / "v1" / "statement.csv"
        assert ok.content == published.read_bytes()


def test_page_downloads_and_exports_need_a_session(service: Running) -> None:
    for path in (f"/files/{FIRST}/2025-06/v1/statement.csv", f"/exports/ledger?account={FIRST}"):
        answer = httpx.get(service.url + path)
        assert answer.status_code == 303 and answer.headers["location"] == "/signin"
        with_bearer = httpx.get(
            service.url + path, headers={"Authorization": f"Bearer {service.tokens['ann']}"}
        )
        assert with_bearer.status_code == 303  # pages take the session cookie only


def test_revoking_a_user_ends_their_session(own_service: Running) -> None:
    with signed_in(own_service, "ann") as ann:
        assert ann.get("/").status_code == 200
        revoke_user(own_service.world.engine, "ann")
        assert ann.get("/").status_code == 303
