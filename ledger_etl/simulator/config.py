"""Everything the simulator can be told at start: credentials, limits, world and faults."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any

from ledger_etl.errors import InputError
from ledger_etl.settings import SIMULATOR_API_KEY, SIMULATOR_IDENTIFIER, SIMULATOR_PASSWORD
from ledger_etl.simulator.history import BOUNDS
from ledger_etl.simulator.world import WorldConfig

# The revision of the world generator (world.py, events.py, prices.py): bump it with any change
# that alters the rows a world serves, so a ledger filled from the old rows refuses the new ones.
GENERATOR_REVISION = 3


def world_detail(world: WorldConfig) -> dict[str, Any]:
    """Everything that decides a world's rows, as JSON (the ledger records it)."""
    return {
        "seed": world.seed, "start": world.start.isoformat(), "accounts": world.accounts,
        "rows_per_day": world.rows_per_day, "demo": world.demo, "timezone": world.timezone,
        "generator": GENERATOR_REVISION,
    }  # fmt: skip


def world_from_detail(detail: dict[str, Any]) -> WorldConfig:
    """The world a ledger recorded; refused when its generator revision is not this one."""
    if detail.get("generator") != GENERATOR_REVISION:
        raise InputError(
            f"this ledger was filled from simulator generator revision {detail.get('generator')}"
            f", this version serves revision {GENERATOR_REVISION}: use a new ledger"
        )
    return WorldConfig(
        seed=int(detail["seed"]), start=date.fromisoformat(detail["start"]),
        accounts=int(detail["accounts"]), rows_per_day=float(detail["rows_per_day"]),
        demo=bool(detail["demo"]), timezone=str(detail["timezone"]),
    )  # fmt: skip


@dataclass(frozen=True)
class SimulatorConfig:
    api_key: str = field(default=SIMULATOR_API_KEY, repr=False)
    identifier: str = SIMULATOR_IDENTIFIER
    password: str = field(default=SIMULATOR_PASSWORD, repr=False)
    world: WorldConfig = field(default_factory=WorldConfig)
    session_idle_seconds: float = 600.0
    session_max_age_seconds: float | None = None  # the ~1 h hard cap some users report
    rate_limit_per_second: int = 10  # per user, all endpoints
    login_rate_per_second: int = 1  # POST /session per API key
    encryption_max_age_seconds: float | None = 300.0  # how old an encrypted timestamp may be
    history_bounds: str = "closed"  # see simulator.history
    transactions_max_days: float | None = None  # undocumented on the real API: unlimited
    markets_without_params: str = "all"  # "error" reproduces the pre-2023-08 400 error.null.epic
    order_spacing_seconds: float = 0.1  # POST /positions and /workingorders: one per 0.1 s
    orders_per_hour: int | None = 1000  # ... and at most this many an hour (demo worlds only)
    faults: dict[str, Any] = field(default_factory=dict)
    request_log_size: int = 20000
    # Unused since balances are drawn per day (see simulator.balances) and need no checkpoint;
    # still accepted so existing config files and `simulator serve --cache-dir` keep working.
    cache_dir: Path | None = None
    # The price stream (see simulator.stream): real seconds between ticks (each tick sends one
    # quote per subscribed open market and the OHLC events of the bars that closed), epics per
    # connection, frames a connection may queue before it is dropped as a slow consumer, and
    # where error frames put their errorCode ("payload" or "top"; sources report both).
    stream_tick_seconds: float = 0.25
    stream_max_epics: int = 40
    stream_queue_size: int = 10_000
    stream_error_code_at: str = "payload"
    extra_markets: int = 0  # synthetic markets SYN01.. for stream tests (see simulator.synthetic)

    def __post_init__(self) -> None:
        if self.history_bounds not in BOUNDS:
            raise ValueError(f"history_bounds must be one of {BOUNDS}")
        if self.markets_without_params not in ("all", "error"):
            raise ValueError("markets_without_params must be 'all' or 'error'")
        if self.stream_error_code_at not in ("payload", "top"):
            raise ValueError("stream_error_code_at must be 'payload' or 'top'")
        if self.stream_tick_seconds <= 0 or self.stream_max_epics < 1:
            raise ValueError("stream_tick_seconds must be positive, stream_max_epics at least 1")
        if self.session_idle_seconds <= 0:
            raise ValueError("session_idle_seconds must be positive")

    def with_overrides(self, **changes: Any) -> SimulatorConfig:
        world_keys = {f.name for f in fields(WorldConfig)}
        world_changes = {k: v for k, v in changes.items() if k in world_keys and v is not None}
        own = {k: v for k, v in changes.items() if k not in world_keys and v is not None}
        world = replace(self.world, **world_changes) if world_changes else self.world
        return replace(self, world=world, **own)


def load_config_file(path: Path) -> SimulatorConfig:
    """A JSON file with any SimulatorConfig keys; `world` holds WorldConfig keys."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read simulator config {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    world_data = data.pop("world", {}) or {}
    if "start" in world_data:
        world_data["start"] = date.fromisoformat(world_data["start"])
    if isinstance(data.get("cache_dir"), str):
        data["cache_dir"] = Path(data["cache_dir"]).expanduser()
    known = {f.name for f in fields(SimulatorConfig)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    return SimulatorConfig(world=WorldConfig(**world_data), **data)
