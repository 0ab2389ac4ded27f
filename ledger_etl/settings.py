"""Configuration from the environment, read when called and never at import time.

| variable | meaning | default |
|---|---|---|
| CAPITAL_API_URL | API host URL; the client adds `/api/v1` | unset: the bundled simulator |
| CAPITAL_API_KEY | API key (`X-CAP-API-KEY`) | `sim-api-key` (simulator) when the URL is unset |
| CAPITAL_IDENTIFIER | login identifier (e-mail) | `sim@example.com` likewise |
| CAPITAL_PASSWORD | the API key's password | `sim-password` likewise |
| CAPITAL_ENCRYPTED_PASSWORD | `true` to send the password RSA-encrypted | `false` |
| CAPITAL_RATE_LIMIT | client-side request rate, requests per second | `10` |
| CAPITAL_SPLIT_THRESHOLD | rows at which a history answer counts as cut short (bisected) | `1000` |
| LEDGER_DATABASE_URL | ledger SQLAlchemy URL | `sqlite:///<project>/var/ledger.sqlite` |
| LEDGER_EXPORT_DIR | where statements are written | `<project>/var/exports` |
| LEDGER_CHART_OF_ACCOUNTS | JSON file overriding the chart of accounts | the built-in chart |
| LEDGER_CLOSE_DAY, LEDGER_CLOSE_HOUR | day (1-28) and UTC hour of the monthly close | `2`, `6` |
| DAGSTER_HOME | the Dagster instance (demo and `make dev`) | `<project>/dagster_home` |
| LEDGER_ETL_KILL_AT | crash-test hook: SIGKILL at a named point (`ledger/faultpoints.py`) | unset |

Every environment read and write of the package is in this module, so that what a command or a
run uses can be traced to one place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ledger_etl.errors import InputError

SIMULATOR_API_KEY = "sim-api-key"
SIMULATOR_IDENTIFIER = "sim@example.com"
SIMULATOR_PASSWORD = "sim-password"  # noqa: S105 - the simulator's published demo credential

DEFAULT_SPLIT_THRESHOLD = 1000

# Every variable read here (the table above), for `configured_variables`.
VARIABLES = (
    "CAPITAL_API_URL", "CAPITAL_API_KEY", "CAPITAL_IDENTIFIER", "CAPITAL_PASSWORD",
    "CAPITAL_ENCRYPTED_PASSWORD", "CAPITAL_RATE_LIMIT", "CAPITAL_SPLIT_THRESHOLD",
    "LEDGER_DATABASE_URL", "LEDGER_EXPORT_DIR", "LEDGER_CHART_OF_ACCOUNTS", "LEDGER_CLOSE_DAY",
    "LEDGER_CLOSE_HOUR", "DAGSTER_HOME", "LEDGER_ETL_KILL_AT",
)  # fmt: skip

_Number = TypeVar("_Number", int, float)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsError(InputError):
    """A configuration value is missing or malformed; the message names the variable."""


def project_root() -> Path:
    """The directory holding pyproject.toml when run from a checkout, else the working dir."""
    here = Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").exists() else Path.cwd()


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _positive(
    env: Mapping[str, str], name: str, default: _Number, kind: type[_Number], what: str
) -> _Number:
    """A number above zero from `env[name]`, or `default` when unset or blank."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {what}, got {raw!r}") from None
    if not value > 0:
        raise SettingsError(f"{name} must be greater than zero, got {raw!r}")
    return value


@dataclass(frozen=True)
class CapitalSettings:
    """How to reach Capital.com. `api_url is None` means: use the bundled simulator."""

    api_url: str | None
    api_key: str = field(repr=False)
    identifier: str
    password: str = field(repr=False)
    encrypted_password: bool = False
    rate_limit: float = 10.0
    # No row cap is documented: an answer with this many rows may have been cut short.
    split_threshold: int = DEFAULT_SPLIT_THRESHOLD

    @property
    def uses_simulator(self) -> bool:
        return self.api_url is None


def capital_settings(env: Mapping[str, str] | None = None) -> CapitalSettings:
    env = os.environ if env is None else env
    url = (env.get("CAPITAL_API_URL") or "").strip() or None
    rate = _positive(env, "CAPITAL_RATE_LIMIT", 10.0, float, "a number")
    encrypted = _bool(env, "CAPITAL_ENCRYPTED_PASSWORD", False)
    split = _positive(
        env, "CAPITAL_SPLIT_THRESHOLD", DEFAULT_SPLIT_THRESHOLD, int, "a whole number"
    )
    if url is None:
        return CapitalSettings(
            api_url=None,
            api_key=env.get("CAPITAL_API_KEY") or SIMULATOR_API_KEY,
            identifier=env.get("CAPITAL_IDENTIFIER") or SIMULATOR_IDENTIFIER,
            password=env.get("CAPITAL_PASSWORD") or SIMULATOR_PASSWORD,
            encrypted_password=encrypted,
            rate_limit=rate,
            split_threshold=split,
        )
    if not url.startswith(("http://", "https://")):
        raise SettingsError(f"CAPITAL_API_URL must start with http:// or https://, got {url!r}")
    missing = [
        name
        for name in ("CAPITAL_API_KEY", "CAPITAL_IDENTIFIER", "CAPITAL_PASSWORD")
        if not (env.get(name) or "").strip()
    ]
    if missing:
        raise SettingsError(
            "CAPITAL_API_URL is set, so these must be set too: " + ", ".join(missing)
        )
    return CapitalSettings(
        api_url=url.rstrip("/"),
        api_key=env["CAPITAL_API_KEY"].strip(),
        identifier=env["CAPITAL_IDENTIFIER"].strip(),
        password=env["CAPITAL_PASSWORD"],
        encrypted_password=encrypted,
        rate_limit=rate,
        split_threshold=split,
    )


def database_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    url = (env.get("LEDGER_DATABASE_URL") or "").strip()
    if url:
        return url
    return f"sqlite:///{project_root() / 'var' / 'ledger.sqlite'}"


def export_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    raw = (env.get("LEDGER_EXPORT_DIR") or "").strip()
    return Path(raw).expanduser() if raw else project_root() / "var" / "exports"


def _bounded(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise SettingsError(f"{name} must be a whole number from {low} to {high}, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class CloseSchedule:
    """When the monthly close runs: `day` of the month at `hour` UTC."""

    day: int = 2
    hour: int = 6


def close_schedule(env: Mapping[str, str] | None = None) -> CloseSchedule:
    env = os.environ if env is None else env
    return CloseSchedule(
        day=_bounded(env, "LEDGER_CLOSE_DAY", 2, 1, 28),
        hour=_bounded(env, "LEDGER_CLOSE_HOUR", 6, 0, 23),
    )


def chart_path(env: Mapping[str, str] | None = None) -> Path | None:
    """The chart-of-accounts override file, or None for the built-in chart."""
    env = os.environ if env is None else env
    raw = (env.get("LEDGER_CHART_OF_ACCOUNTS") or "").strip()
    return Path(raw).expanduser() if raw else None


def kill_point(env: Mapping[str, str] | None = None) -> str | None:
    """The crash-test hook `LEDGER_ETL_KILL_AT` (`<point>` or `<point>:<n>`), or None."""
    env = os.environ if env is None else env
    return (env.get("LEDGER_ETL_KILL_AT") or "").strip() or None


def dagster_home(env: Mapping[str, str] | None = None) -> Path:
    """`$DAGSTER_HOME`, or the project's `dagster_home/`."""
    env = os.environ if env is None else env
    raw = (env.get("DAGSTER_HOME") or "").strip()
    return Path(raw).expanduser() if raw else project_root() / "dagster_home"


def configured_variables(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The names of the variables this module reads that are set (not blank) in `env`."""
    env = os.environ if env is None else env
    return frozenset(name for name in VARIABLES if (env.get(name) or "").strip())


def export_environment(values: Mapping[str, str]) -> None:
    """Set variables for this process and the processes it starts (Dagster runs read them)."""
    os.environ.update(values)


def stream_health_path(env: Mapping[str, str] | None = None) -> Path:
    """Where `ledger-etl stream` records its health (LEDGER_STREAM_HEALTH) for `stream_healthy`."""
    env = os.environ if env is None else env
    raw = (env.get("LEDGER_STREAM_HEALTH") or "").strip()
    return Path(raw).expanduser() if raw else project_root() / "var" / "stream-health.json"
