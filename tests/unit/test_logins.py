"""The credentials file: logins with environment-variable references, refused when unsafe."""

from pathlib import Path

import pytest

from ledger_etl.logins import (
    CredentialsError,
    account_key,
    configured_logins,
    load_logins,
    split_account_key,
)

YAML = """
logins:
  - name: acme
    api_url: https://acme.example/
    api_key: ${ACME_KEY}
    identifier: ops@acme.example
    password: ${ACME_PASSWORD}
    rate_limit: 5
  - name: beta-2
    api_url: http://127.0.0.1:9/beta
    api_key_env: BETA_KEY
    identifier_env: BETA_ID
    password_env: BETA_PASSWORD
"""

TOML = """
[[logins]]
name = "acme"
api_url = "https://acme.example"
api_key = "${ACME_KEY}"
identifier = "ops@acme.example"
password = "${ACME_PASSWORD}"
"""

ENV = {
    "ACME_KEY": "key-acme-123",
    "ACME_PASSWORD": "pw-acme-456",
    "BETA_KEY": "key-beta-789",
    "BETA_ID": "beta@example.com",
    "BETA_PASSWORD": "pw-beta-000",
    "CAPITAL_RATE_LIMIT": "8",
}


def _file(tmp_path: Path, text: str, suffix: str = ".yaml") -> Path:
    path = tmp_path / f"logins{suffix}"
    path.write_text(text, encoding="utf-8")
    return path


def test_yaml_logins_resolve_their_references(tmp_path: Path) -> None:
    acme, beta = load_logins(_file(tmp_path, YAML))
    first, second = acme.settings(ENV), beta.settings(ENV)
    assert (acme.name, first.api_url, first.api_key, first.password) == (
        "acme", "https://acme.example", "key-acme-123", "pw-acme-456"
    )  # fmt: skip
    assert first.identifier == "ops@acme.example" and first.rate_limit == 5.0
    assert (second.identifier, second.api_key, second.rate_limit) == (
        "beta@example.com", "key-beta-789", 8.0  # the CAPITAL_RATE_LIMIT default
    )  # fmt: skip
    # The file holds names, never values; settings hide the secrets from repr.
    assert "key-acme-123" not in repr(acme) + repr(first)


def test_toml_file_and_the_settings_variable(tmp_path: Path) -> None:
    path = _file(tmp_path, TOML, ".toml")
    logins = configured_logins({"LEDGER_CREDENTIALS_FILE": str(path)})
    assert logins is not None and [x.name for x in logins] == ["acme"]
    assert logins[0].settings(ENV).api_key == "key-acme-123"
    assert configured_logins({}) is None  # no file: one login, the CAPITAL_* variables


@pytest.mark.parametrize(
    ("field", "line"),
    [("api_key", "api_key: key-acme-123"), ("password", "password: hunter2-literal")],
)
def test_a_literal_secret_refuses_the_file(tmp_path: Path, field: str, line: str) -> None:
    text = YAML.replace(f"{field}: ${{ACME_{'KEY' if field == 'api_key' else 'PASSWORD'}}}", line)
    assert text != YAML
    with pytest.raises(CredentialsError) as caught:
        load_logins(_file(tmp_path, text))
    message = str(caught.value)
    assert "login 'acme'" in message and field in message and "literal" in message
    assert line.split(": ")[1] not in message  # the value is never repeated


def test_an_unset_variable_fails_that_login_only(tmp_path: Path) -> None:
    acme, beta = load_logins(_file(tmp_path, YAML))
    env = {k: v for k, v in ENV.items() if k != "BETA_PASSWORD"}
    assert acme.settings(env).api_key == "key-acme-123"
    with pytest.raises(CredentialsError, match=r"login 'beta-2': password .* BETA_PASSWORD"):
        beta.settings(env)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("logins: []", "empty"),
        ("accounts: {}", "`logins` list"),
        (YAML.replace("name: beta-2", "name: acme"), "used twice"),
        (YAML.replace("name: beta-2", "name: beta/2"), "name of letters"),
        (YAML.replace("rate_limit: 5", "rate_limit: 0"), "rate_limit"),
        (YAML.replace("rate_limit: 5", "token: x"), "unknown keys"),
        (YAML.replace("https://acme.example/", "acme.example"), "api_url"),
        (YAML.replace("api_key_env: BETA_KEY", "api_key_env: 'not a name'"), "api_key_env"),
        ("logins: [", "not valid YAML"),
    ],
)
def test_malformed_files_are_refused_with_the_reason(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(CredentialsError, match=expected):
        load_logins(_file(tmp_path, text))


def test_unreadable_or_unknown_kind_of_file(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read"):
        load_logins(tmp_path / "missing.yaml")
    with pytest.raises(CredentialsError, match=r"\.yaml, \.yml or \.toml"):
        load_logins(_file(tmp_path, YAML, ".json"))


def test_account_keys_carry_the_login() -> None:
    assert account_key("acme", "123") == "acme/123"
    assert account_key(None, "123") == "123"
    assert split_account_key("acme/123") == ("acme", "123")
    assert split_account_key("123") == (None, "123")
