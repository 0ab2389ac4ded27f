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
| LEDGER_CREDENTIALS_FILE | several logins: YAML or TOML file (`logins.py`) | unset: one login |
| LEDGER_DATABASE_URL | ledger SQLAlchemy URL | `sqlite:///<project>/var/ledger.sqlite` |
| LEDGER_SQLITE_BUSY_TIMEOUT | seconds a SQLite connection waits for another process's lock | `60` |
| LEDGER_EXPORT_DIR | where statements are written | `<project>/var/exports` |
| LEDGER_CHART_OF_ACCOUNTS | JSON file overriding the chart of accounts | the built-in chart |
| LEDGER_CLOSE_DAY, LEDGER_CLOSE_HOUR | day (1-28) and UTC hour of the monthly close | `2`, `6` |
| DAGSTER_HOME | the Dagster instance (demo and `make dev`) | `<project>/dagster_home` |
| LEDGER_ETL_KILL_AT | crash-test hook: SIGKILL at a named point (`ledger/faultpoints.py`) | unset |
| TRADING_POLL_CRON | when the Dagster schedule polls positions and working orders | every 5 min |
| TRADING_POLICY_FILE | governance policy (YAML or JSON) evaluated on every snapshot | unset |
| TRADING_INSTRUMENT_MAP | epic -> ISIN / FIGI / TradingView mapping file | unset |
| LEDGER_SERVICE_SECRET | signs the read service's session cookies and form tokens | random |

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
    "LEDGER_CREDENTIALS_FILE",
    "LEDGER_DATABASE_URL", "LEDGER_SQLITE_BUSY_TIMEOUT", "LEDGER_EXPORT_DIR",
    "LEDGER_CHART_OF_ACCOUNTS", "LEDGER_CLOSE_DAY", "LEDGER_CLOSE_HOUR", "DAGSTER_HOME",
    "LEDGER_ETL_KILL_AT",
    "TRADING_POLL_CRON", "TRADING_POLICY_FILE", "TRADING_INSTRUMENT_MAP",
    "LEDGER_SERVICE_SECRET",
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


def client_limits(env: Mapping[str, str] | None = None) -> tuple[float, int]:
    """(CAPITAL_RATE_LIMIT, CAPITAL_SPLIT_THRESHOLD): the defaults of every login."""
    env = os.environ if env is None else env
    rate = _positive(env, "CAPITAL_RATE_LIMIT", 10.0, float, "a number")
    split = _positive(
        env, "CAPITAL_SPLIT_THRESHOLD", DEFAULT_SPLIT_THRESHOLD, int, "a whole number"
    )
    return rate, split


def credentials_file(env: Mapping[str, str] | None = None) -> Path | None:
    """`LEDGER_CREDENTIALS_FILE`: the logins file (see `ledger_etl.logins`), or None: one login,
    configured by the CAPITAL_* variables."""
    env = os.environ if env is None else env
    raw = (env.get("LEDGER_CREDENTIALS_FILE") or "").strip()
    return Path(raw).expanduser() if raw else None


def secret_reference(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The value of the environment variable a credentials file refers to (`${name}`), or None
    when it is unset or blank. The caller names the login and field in its error."""
    env = os.environ if env is None else env
    value = env.get(name)
    return value if value is not None and value.strip() else None


def database_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    url = (env.get("LEDGER_DATABASE_URL") or "").strip()
    if url:
        return url
    return f"sqlite:///{project_root() / 'var' / 'ledger.sqlite'}"


DEFAULT_SQLITE_BUSY_TIMEOUT = 60.0


def sqlite_busy_timeout(env: Mapping[str, str] | None = None) -> float:
    """Seconds a SQLite connection waits for a lock another process holds before it fails
    ("database is locked"): writers are serialized, so a second writer waits this long."""
    env = os.environ if env is None else env
    return _positive(
        env, "LEDGER_SQLITE_BUSY_TIMEOUT", DEFAULT_SQLITE_BUSY_TIMEOUT, float, "a number of seconds"
    )


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


def service_secret(env: Mapping[str, str] | None = None) -> bytes | None:
    """`LEDGER_SERVICE_SECRET` (at least 32 characters), or None: the service then makes a random
    one, and its sessions end when it restarts."""
    env = os.environ if env is None else env
    raw = (env.get("LEDGER_SERVICE_SECRET") or "").strip()
    if not raw:
        return None
    if len(raw) < 32:
        raise SettingsError("LEDGER_SERVICE_SECRET must be at least 32 characters long")
    return raw.encode()


def configured_variables(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """The names of the variables this module reads that are set (not blank) in `env`."""
    env = os.environ if env is None else env
    return frozenset(name for name in VARIABLES if (env.get(name) or "").strip())


def export_environment(values: Mapping[str, str]) -> None:
    """Set variables for this process and the processes it starts (Dagster runs read them)."""
    os.environ.update(values)


# -- trading state ------------------------------------------------------------------------------
DEFAULT_TRADING_POLL_CRON = "*/5 * * * *"


def trading_poll_cron(env: Mapping[str, str] | None = None) -> str:
    """`TRADING_POLL_CRON`: when positions and working orders are polled (default every 5 min)."""
    env = os.environ if env is None else env
    raw = (env.get("TRADING_POLL_CRON") or "").strip() or DEFAULT_TRADING_POLL_CRON
    if len(raw.split()) != 5:
        raise SettingsError(f"TRADING_POLL_CRON must be a five-field cron expression, not {raw!r}")
    return raw


def trading_policy_path(env: Mapping[str, str] | None = None) -> Path | None:
    """`TRADING_POLICY_FILE`: the governance policy evaluated on every snapshot, or None."""
    env = os.environ if env is None else env
    raw = (env.get("TRADING_POLICY_FILE") or "").strip()
    return Path(raw).expanduser() if raw else None


def trading_mapping_path(env: Mapping[str, str] | None = None) -> Path | None:
    """`TRADING_INSTRUMENT_MAP`: the user's epic -> ISIN / FIGI / TradingView mapping, or None."""
    env = os.environ if env is None else env
    raw = (env.get("TRADING_INSTRUMENT_MAP") or "").strip()
    return Path(raw).expanduser() if raw else None


# -- trade intents (ledger-etl intents serve) ----------------------------------------------------
# LEDGER_INTENTS_SECRET           the shared secret every alert carries in its body (required)
# LEDGER_INTENTS_HMAC_SECRET      when set, every request must also carry a valid
#                                 `X-Signature: sha256=<hex HMAC-SHA256 of the body>`
# LEDGER_INTENTS_ALLOWED_IPS      comma-separated addresses or CIDR blocks (unset: any)
# LEDGER_INTENTS_SYMBOL_MAP       JSON file {"FX:EURUSD": "EURUSD", ...}
# LEDGER_INTENTS_POLICY           governance policy file (YAML or JSON, ledger_etl.trading.policy)
# LEDGER_INTENTS_ALLOWED_EPICS    comma-separated epics intents may trade (unset: any)
# LEDGER_INTENTS_MAX_ORDERS_PER_MINUTE, LEDGER_INTENTS_DAILY_LOSS_CAP   risk caps (unset: none)
# CAPITAL_ALLOW_LIVE_TRADING      `true` to let `--live` send orders to a non-demo account
INTENTS_VARIABLES = (
    "LEDGER_INTENTS_SECRET", "LEDGER_INTENTS_HMAC_SECRET", "LEDGER_INTENTS_ALLOWED_IPS",
    "LEDGER_INTENTS_SYMBOL_MAP", "LEDGER_INTENTS_POLICY", "LEDGER_INTENTS_ALLOWED_EPICS",
    "LEDGER_INTENTS_MAX_ORDERS_PER_MINUTE", "LEDGER_INTENTS_DAILY_LOSS_CAP",
    "CAPITAL_ALLOW_LIVE_TRADING",
)  # fmt: skip


@dataclass(frozen=True)
class IntentsSettings:
    secret: str = field(repr=False)
    hmac_secret: str | None = field(default=None, repr=False)
    allowed_ips: tuple[str, ...] = ()
    symbol_map: Path | None = None
    policy: Path | None = None
    allowed_epics: frozenset[str] | None = None
    max_orders_per_minute: int | None = None
    daily_loss_cap: str | None = None  # exact decimal text
    allow_live_trading: bool = False


def _csv(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in (env.get(name) or "").split(",") if p.strip())


def intents_settings(env: Mapping[str, str] | None = None) -> IntentsSettings:
    """The intents service's configuration; refused without a secret (the service must never
    accept orders from whoever finds its address)."""
    env = os.environ if env is None else env
    secret = env.get("LEDGER_INTENTS_SECRET") or ""
    if len(secret.strip()) < 16:
        raise SettingsError(
            "LEDGER_INTENTS_SECRET must be set to a secret of at least 16 characters"
        )
    epics = _csv(env, "LEDGER_INTENTS_ALLOWED_EPICS")
    cap = (env.get("LEDGER_INTENTS_DAILY_LOSS_CAP") or "").strip() or None
    if cap is not None:
        from decimal import Decimal, InvalidOperation

        try:
            if not Decimal(cap) > 0:
                raise InvalidOperation
        except InvalidOperation:
            raise SettingsError(
                f"LEDGER_INTENTS_DAILY_LOSS_CAP must be a positive number, got {cap!r}"
            ) from None
    per_minute = None
    if (env.get("LEDGER_INTENTS_MAX_ORDERS_PER_MINUTE") or "").strip():
        per_minute = _positive(
            env, "LEDGER_INTENTS_MAX_ORDERS_PER_MINUTE", 1, int, "a whole number"
        )
    paths = {
        name: Path(env[name]).expanduser() if (env.get(name) or "").strip() else None
        for name in ("LEDGER_INTENTS_SYMBOL_MAP", "LEDGER_INTENTS_POLICY")
    }
    return IntentsSettings(
        secret=secret,
        hmac_secret=(env.get("LEDGER_INTENTS_HMAC_SECRET") or None),
        allowed_ips=_csv(env, "LEDGER_INTENTS_ALLOWED_IPS"),
        symbol_map=paths["LEDGER_INTENTS_SYMBOL_MAP"],
        policy=paths["LEDGER_INTENTS_POLICY"],
        allowed_epics=frozenset(epics) if epics else None,
        max_orders_per_minute=per_minute,
        daily_loss_cap=cap,
        allow_live_trading=_bool(env, "CAPITAL_ALLOW_LIVE_TRADING", False),
    )


def stream_health_path(env: Mapping[str, str] | None = None) -> Path:
    """Where `ledger-etl stream` records its health (LEDGER_STREAM_HEALTH) for `stream_healthy`."""
    env = os.environ if env is None else env
    raw = (env.get("LEDGER_STREAM_HEALTH") or "").strip()
    return Path(raw).expanduser() if raw else project_root() / "var" / "stream-health.json"


# -- execution beyond one process (ledger_etl/defs/scale.py, docs/deploy.md) ----------------------
# LEDGER_EXECUTOR        `celery` hands every step to Celery workers; unset: Dagster's default
# LEDGER_CELERY_BROKER   the broker URL (read by Dagster by name; never shown)
# LEDGER_CELERY_BACKEND  an optional result backend URL (likewise)
# LEDGER_LOGIN           the login name history runs are tagged with (`default`)
# LEDGER_CELERY_QUEUE    the broker queue of the steps (`dagster`); one per deployment on a broker
SCALE_VARIABLES = (
    "LEDGER_EXECUTOR", "LEDGER_CELERY_BROKER", "LEDGER_CELERY_BACKEND", "LEDGER_LOGIN",
    "LEDGER_CELERY_QUEUE",
)  # fmt: skip


def scale_settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables above, stripped ('' when unset)."""
    env = os.environ if env is None else env
    return {name: (env.get(name) or "").strip() for name in SCALE_VARIABLES}
