"""Configuration comes from one module, with the same meaning whichever source is configured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledger_etl.settings import (
    SettingsError,
    capital_settings,
    chart_path,
    close_schedule,
    kill_point,
)

LIVE = {
    "CAPITAL_API_URL": "https://demo-api-capital.backend-capital.com",
    "CAPITAL_API_KEY": "key",
    "CAPITAL_IDENTIFIER": "someone@example.com",
    "CAPITAL_PASSWORD": "pw",
}


@pytest.mark.parametrize("base", [{}, LIVE], ids=["simulator", "api-url-set"])
def test_split_threshold_is_honoured_with_and_without_an_api_url(base: dict[str, str]) -> None:
    assert capital_settings({**base, "CAPITAL_SPLIT_THRESHOLD": "250"}).split_threshold == 250
    assert capital_settings(base).split_threshold == 1000


@pytest.mark.parametrize("base", [{}, LIVE], ids=["simulator", "api-url-set"])
def test_every_client_setting_is_kept_when_an_api_url_is_set(base: dict[str, str]) -> None:
    env = {**base, "CAPITAL_RATE_LIMIT": "3.5", "CAPITAL_ENCRYPTED_PASSWORD": "true"}
    settings = capital_settings(env)
    assert settings.rate_limit == 3.5
    assert settings.encrypted_password is True


def test_close_schedule_defaults_and_bounds() -> None:
    assert close_schedule({}) == close_schedule({"LEDGER_CLOSE_DAY": " ", "LEDGER_CLOSE_HOUR": ""})
    assert (close_schedule({}).day, close_schedule({}).hour) == (2, 6)
    custom = close_schedule({"LEDGER_CLOSE_DAY": "28", "LEDGER_CLOSE_HOUR": "0"})
    assert (custom.day, custom.hour) == (28, 0)
    for name, bad in [
        ("LEDGER_CLOSE_DAY", "29"),
        ("LEDGER_CLOSE_DAY", "0"),
        ("LEDGER_CLOSE_HOUR", "24"),
        ("LEDGER_CLOSE_HOUR", "six"),
        ("LEDGER_CLOSE_DAY", "\uff12"),  # a full-width digit is not a number here
    ]:
        with pytest.raises(SettingsError, match=name):
            close_schedule({name: bad})


def test_chart_path_and_kill_point() -> None:
    assert chart_path({}) is None
    assert chart_path({"LEDGER_CHART_OF_ACCOUNTS": " chart.json "}) == Path("chart.json")
    assert kill_point({}) is None
    assert kill_point({"LEDGER_ETL_KILL_AT": "mid_upsert:2"}) == "mid_upsert:2"


def test_only_the_settings_module_reads_the_environment() -> None:
    package = Path(__file__).resolve().parents[2] / "ledger_etl"
    pattern = re.compile(r"\bos\.(environ|getenv|putenv|unsetenv)\b")
    offenders = [
        f"{path.relative_to(package.parent)}:{number}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "settings.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []
