"""The pages in a real browser (Debian's chromium driven by Playwright), on both backends:
sign in with the keyboard, download a statement, see a PROVISIONAL month, and a second user
who finds nothing of the first user's account anywhere."""

from __future__ import annotations

from pathlib import Path

from tests.service.conftest import Running
from tests.service.world import FIRST, SECOND


def sign_in(page, service: Running, user: str) -> None:
    page.goto(service.url + "/")
    assert page.url.endswith("/signin")
    # The token field takes the focus by itself (autofocus); a loaded machine may apply it a
    # moment after the page loads, and keys typed before that would go nowhere.
    page.wait_for_function("document.activeElement && document.activeElement.id === 'token'")
    page.keyboard.type(service.tokens[user])
    page.keyboard.press("Enter")
    page.wait_for_url(service.url + "/")
    assert page.get_by_text(f"Signed in as {user}").is_visible()


def test_sign_in_pick_a_month_and_download_the_published_bytes(
    page, browser_service: Running
) -> None:
    sign_in(page, browser_service, "ann")
    page.get_by_label("Account").select_option(FIRST)
    page.get_by_label("Month").select_option("2025-06")
    page.get_by_role("button", name="Show statement").press("Enter")
    page.wait_for_url("**/statement?*")
    assert page.get_by_test_id("status").inner_text() == "FINAL"
    assert page.get_by_test_id("reconciliation").inner_text() == "RECONCILED"
    assert "1197.00" in page.locator("dl.balances").first.inner_text()
    assert "1 added, 0 changed, 0 removed" in page.locator("table").last.inner_text()
    assert "CFDs are complex instruments" in page.locator("footer").inner_text()
    folder = browser_service.world.export_root / FIRST / "2025-06" / "v2"
    for name in ("statement.csv", "statement.xlsx", "statement.pdf"):
        with page.expect_download() as info:
            page.get_by_role("link", name=name, exact=True).click()
        saved = Path(info.value.path())
        assert saved.read_bytes() == (folder / name).read_bytes(), name
        assert info.value.suggested_filename == f"{FIRST}_2025-06_v2_{name}"


def test_a_month_with_a_gap_shows_a_provisional_badge(page, browser_service: Running) -> None:
    sign_in(page, browser_service, "ann")
    page.get_by_role("link", name="2025-07").click()
    badge = page.get_by_test_id("status")
    assert badge.inner_text() == "PROVISIONAL"
    assert "transactions: 2025-07-04" in page.locator("main").inner_text()


def test_a_second_user_cannot_see_the_first_users_account(page, browser_service: Running) -> None:
    sign_in(page, browser_service, "bob")
    for path in (
        "/",
        "/ledger",
        f"/ledger?account={SECOND}",
        f"/statement?account={SECOND}&month=2025-06",
    ):
        page.goto(browser_service.url + path)
        assert FIRST not in page.content(), path
    for path in (
        f"/statement?account={FIRST}&month=2025-06",
        f"/files/{FIRST}/2025-06/v1/statement.csv",
        f"/ledger?account={FIRST}",
    ):
        response = page.goto(browser_service.url + path)
        assert response.status == 404, path
        assert page.locator("h1").inner_text() == "Not found"
    assert page.get_by_label("Account").count() == 0 or FIRST not in page.content()


def test_ledger_search_and_export_by_keyboard(page, browser_service: Running) -> None:
    sign_in(page, browser_service, "ann")
    page.goto(browser_service.url + "/ledger")
    page.get_by_label("Account").select_option(FIRST)
    page.get_by_label("From (YYYY-MM-DD, inclusive)").fill("2025-06-01")
    page.get_by_label("To (exclusive)").fill("2025-06-02")
    page.get_by_label("Types (e.g. TRADE,SWAP)").fill("TRADE")
    page.get_by_label("Types (e.g. TRADE,SWAP)").press("Enter")
    page.wait_for_url("**/ledger?*")
    rows = page.locator("tbody tr")
    assert rows.count() > 3
    assert all("TRADE" in rows.nth(i).inner_text() for i in range(rows.count()))
    link = page.get_by_role("link", name="CSV")
    link.focus()
    with page.expect_download() as info:
        page.keyboard.press("Enter")
    text = Path(info.value.path()).read_text()
    assert text.startswith("account_id,posted_at") and len(text.splitlines()) == rows.count() + 1
