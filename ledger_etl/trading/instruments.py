"""The instrument master: epic -> `CAPITAL:<epic>`, with the attributes exposure and policy need.

The id is `CAPITAL:` followed by the epic exactly as the broker spells it: stable for as long as
the broker keeps the epic, and readable by a person. A version is valid over
`[valid_from, valid_to)`; a new one starts whenever any attribute (margin factor, lot size,
dealing rules, mapped external ids...) changes. External ids come only from a user file, since
no mapping service is reachable: JSON or YAML, `{"GOLD": {"ISIN": "...", "FIGI": "...",
"TRADINGVIEW": "TVC:GOLD"}}`, keyed by epic or by instrument id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_etl.errors import InputError

if TYPE_CHECKING:
    from ledger_etl.capital.trading_models import MarketDetails

ID_PREFIX = "CAPITAL:"
EXTERNAL_SCHEMES = ("ISIN", "FIGI", "TRADINGVIEW")


class MappingFileError(InputError):
    """An instrument mapping file that cannot be read or holds an unknown scheme."""


def instrument_id(epic: str) -> str:
    return f"{ID_PREFIX}{epic}"


@dataclass(frozen=True)
class InstrumentAttributes:
    epic: str
    name: str | None
    symbol: str | None
    asset_class: str | None
    currency: str | None
    lot_size: Decimal | None
    margin_factor: Decimal | None
    margin_factor_unit: str | None
    guaranteed_stop_allowed: bool | None
    dealing_rules: dict[str, Any] = field(default_factory=dict)
    external_ids: dict[str, str] = field(default_factory=dict)

    @property
    def instrument_id(self) -> str:
        return instrument_id(self.epic)

    def sha256(self) -> str:
        """What decides whether a new version starts: every attribute, canonically."""
        text = json.dumps(asdict(self), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def missing(self) -> list[str]:
        """Attributes exposure cannot do without; an instrument lacking one is flagged."""
        needed = {
            "currency": self.currency,
            "lot_size": self.lot_size,
            "margin_factor": self.margin_factor,
            "asset_class": self.asset_class,
        }
        return [name for name, value in needed.items() if value is None]


def attributes_from(details: MarketDetails, external_ids: dict[str, str]) -> InstrumentAttributes:
    inst = details.instrument
    return InstrumentAttributes(
        epic=inst.epic,
        name=inst.name,
        symbol=inst.symbol,
        asset_class=inst.type,
        currency=inst.currency,
        lot_size=inst.lot_size,
        margin_factor=inst.margin_factor,
        margin_factor_unit=inst.margin_factor_unit,
        guaranteed_stop_allowed=inst.guaranteed_stop_allowed,
        dealing_rules=json.loads(json.dumps(details.dealing_rules, default=str)),
        external_ids=dict(sorted(external_ids.items())),
    )


def load_mapping(path: Path | None) -> dict[str, dict[str, str]]:
    """epic -> {scheme: value} from the user's mapping file (none: an empty mapping)."""
    if path is None:
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise MappingFileError(f"cannot read instrument mapping {path}: {error.strerror}") from None
    try:
        import yaml

        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except Exception as error:
        raise MappingFileError(f"instrument mapping {path} is not valid: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MappingFileError(f"instrument mapping {path} must map epics to ids")
    mapping: dict[str, dict[str, str]] = {}
    for key, ids in data.items():
        epic = str(key).removeprefix(ID_PREFIX)
        if not isinstance(ids, dict):
            raise MappingFileError(f"instrument mapping {path}: {key} must map schemes to ids")
        for scheme, value in ids.items():
            if str(scheme).upper() not in EXTERNAL_SCHEMES:
                raise MappingFileError(
                    f"instrument mapping {path}: {key} has unknown scheme {scheme!r} "
                    f"(known: {', '.join(EXTERNAL_SCHEMES)})"
                )
            mapping.setdefault(epic, {})[str(scheme).upper()] = str(value)
    return mapping
