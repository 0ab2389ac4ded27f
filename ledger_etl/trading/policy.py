"""Governance policy: a YAML or JSON file of rules, validated on load, evaluated on a snapshot.

```yaml
max_notional:                 # in the account currency
  account: 500000
  per_epic: {GOLD: 50000, "*": 100000}        # "*" applies to every other epic
  per_asset_class: {CRYPTOCURRENCIES: 20000}
max_leverage: 10              # total notional / balance
require_stop: true
require_guaranteed_stop: [CRYPTOCURRENCIES]   # asset classes
require_take_profit: false
max_stop_distance_pct: 5      # |open - stop| / open x 100
drift: true                   # stop, limit, guaranteedStop, trailingStop vs the first values
```

Numbers are read exactly (YAML floats and JSON numbers become Decimal from their text). An
empty file, an unknown rule or a value of the wrong kind is an `InvalidPolicyError` naming it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ledger_etl.errors import InputError

from .exposure import Exposure

RULES = (
    "max_notional",
    "max_leverage",
    "require_stop",
    "require_guaranteed_stop",
    "require_take_profit",
    "max_stop_distance_pct",
    "drift",
)
NOTIONAL_SCOPES = ("account", "per_epic", "per_asset_class")
DRIFT_FIELDS = (
    "stop_level",
    "stop_distance",
    "profit_level",
    "profit_distance",
    "guaranteed_stop",
    "trailing_stop",
)


class InvalidPolicyError(InputError):
    """A policy file that is empty, unreadable, or holds an unknown or malformed rule."""


@dataclass(frozen=True)
class Policy:
    max_notional_account: Decimal | None = None
    max_notional_epic: dict[str, Decimal] = field(default_factory=dict)
    max_notional_class: dict[str, Decimal] = field(default_factory=dict)
    max_leverage: Decimal | None = None
    require_stop: bool = False
    require_guaranteed_stop: tuple[str, ...] = ()
    require_take_profit: bool = False
    max_stop_distance_pct: Decimal | None = None
    drift: bool = False
    source: str = ""


def _decimal_loader() -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def exact(loader: Any, node: Any) -> Decimal:
        return Decimal(loader.construct_scalar(node))

    Loader.add_constructor("tag:yaml.org,2002:float", exact)
    return Loader


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidPolicyError(f"cannot read policy file {path}: {error.strerror}") from None
    if not text.strip():
        raise InvalidPolicyError(f"policy file {path} is empty: it must name at least one rule")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.load(text, Loader=_decimal_loader())  # noqa: S506 (a SafeLoader)
        else:
            data = json.loads(text, parse_float=Decimal)
    except Exception as error:
        reason = " ".join(str(error).split())
        raise InvalidPolicyError(f"policy file {path} cannot be parsed: {reason}") from None
    return parse_policy(data, str(path))


def _amount(value: Any, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
        raise InvalidPolicyError(f"policy rule {where} must be a number, got {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InvalidPolicyError(f"policy rule {where} must be a number, got {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise InvalidPolicyError(f"policy rule {where} must be a non-negative number")
    return amount


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidPolicyError(f"policy rule {where} must be true or false, got {value!r}")
    return value


def _limits(value: Any, where: str) -> dict[str, Decimal]:
    if not isinstance(value, Mapping):
        raise InvalidPolicyError(f"policy rule {where} must map names to amounts")
    return {str(k): _amount(v, f"{where}.{k}") for k, v in value.items()}


def parse_policy(data: Any, source: str = "<policy>") -> Policy:
    if not isinstance(data, Mapping) or not data:
        raise InvalidPolicyError(f"policy {source} must be a mapping with at least one rule")
    unknown = sorted(set(map(str, data)) - set(RULES))
    if unknown:
        raise InvalidPolicyError(
            f"policy {source}: unknown rule {unknown[0]!r} (known: {', '.join(RULES)})"
        )
    kw: dict[str, Any] = {"source": source}
    notional = data.get("max_notional")
    if notional is not None:
        if not isinstance(notional, Mapping):
            raise InvalidPolicyError("policy rule max_notional must be a mapping")
        bad = sorted(set(map(str, notional)) - set(NOTIONAL_SCOPES))
        if bad:
            raise InvalidPolicyError(f"policy rule max_notional has unknown scope {bad[0]!r}")
        if "account" in notional:
            kw["max_notional_account"] = _amount(notional["account"], "max_notional.account")
        if "per_epic" in notional:
            kw["max_notional_epic"] = _limits(notional["per_epic"], "max_notional.per_epic")
        if "per_asset_class" in notional:
            kw["max_notional_class"] = _limits(
                notional["per_asset_class"], "max_notional.per_asset_class"
            )
    if "max_leverage" in data:
        kw["max_leverage"] = _amount(data["max_leverage"], "max_leverage")
    if "max_stop_distance_pct" in data:
        kw["max_stop_distance_pct"] = _amount(
            data["max_stop_distance_pct"], "max_stop_distance_pct"
        )
    for name in ("require_stop", "require_take_profit", "drift"):
        if name in data:
            kw[name] = _flag(data[name], name)
    if "require_guaranteed_stop" in data:
        classes = data["require_guaranteed_stop"]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise InvalidPolicyError("policy rule require_guaranteed_stop must list asset classes")
        kw["require_guaranteed_stop"] = tuple(classes)
    return Policy(**kw)


@dataclass(frozen=True)
class Breach:
    rule: str
    deal_id: str | None
    detail: str
    old: Any = None
    new: Any = None
    scope: str = ""  # the epic or asset class of an aggregate limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "deal_id": self.deal_id,
            "detail": self.detail,
            "old": self.old,
            "new": self.new,
        }


def evaluate(
    policy: Policy,
    exposure: Exposure,
    deals: Mapping[str, Mapping[str, Any]],
    first_values: Mapping[str, Mapping[str, Any]],
    balance: Decimal | None,
) -> list[Breach]:
    """Breaches of `policy` by the account's positions (`deals`: deal_id -> snapshot values,
    `first_values`: deal_id -> the values first observed or intended, for drift)."""
    found: list[Breach] = []
    by_deal = {p.deal_id: p for p in exposure.positions}
    for deal_id, v in sorted(deals.items()):
        p = by_deal.get(deal_id)
        asset_class = p.asset_class if p else None
        has_stop = v.get("stop_level") is not None or v.get("stop_distance") is not None
        if policy.require_stop and not has_stop:
            found.append(Breach("require_stop", deal_id, f"{v.get('epic')} has no stop"))
        if asset_class in policy.require_guaranteed_stop and not v.get("guaranteed_stop"):
            found.append(
                Breach(
                    "require_guaranteed_stop",
                    deal_id,
                    f"{v.get('epic')} ({asset_class}) has no guaranteed stop",
                )
            )
        has_limit = v.get("profit_level") is not None or v.get("profit_distance") is not None
        if policy.require_take_profit and not has_limit:
            found.append(Breach("require_take_profit", deal_id, f"{v.get('epic')} has no limit"))
        found += _stop_distance(policy, deal_id, v)
        if policy.drift and deal_id in first_values:
            found += _drift(deal_id, first_values[deal_id], v)
    found += _aggregate_limits(policy, exposure, balance)
    return found


def _stop_distance(policy: Policy, deal_id: str, v: Mapping[str, Any]) -> list[Breach]:
    limit = policy.max_stop_distance_pct
    if limit is None or v.get("level") in (None, 0):
        return []
    level = Decimal(str(v["level"]))
    if v.get("stop_level") is not None:
        distance = abs(level - Decimal(str(v["stop_level"])))
    elif v.get("stop_distance") is not None:
        distance = abs(Decimal(str(v["stop_distance"])))
    else:
        return []
    if distance * 100 > limit * level:
        pct = distance * 100 / level
        return [
            Breach(
                "max_stop_distance_pct",
                deal_id,
                f"stop {pct:.4f}% from the open level, limit {limit}%",
                None,
                str(v.get("stop_level") or v.get("stop_distance")),
            )
        ]
    return []


def _drift(deal_id: str, first: Mapping[str, Any], now: Mapping[str, Any]) -> list[Breach]:
    out = []
    for name in DRIFT_FIELDS:
        old, new = _norm(first.get(name)), _norm(now.get(name))
        if old != new and not (old is None and name in ("guaranteed_stop", "trailing_stop")):
            what = "removed" if new in (None, False) else "changed"
            out.append(Breach(f"drift.{name}", deal_id, f"{name} {what}: {old} -> {new}", old, new))
    return out


def _norm(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    try:
        return format(Decimal(str(value)).normalize(), "f")
    except InvalidOperation:
        return value


def _aggregate_limits(policy: Policy, exposure: Exposure, balance: Decimal | None) -> list[Breach]:
    out = []
    total = exposure.totals.get("notional", Decimal(0))
    if policy.max_notional_account is not None and total > policy.max_notional_account:
        out.append(
            Breach(
                "max_notional.account",
                None,
                f"notional {total} > {policy.max_notional_account}",
                scope="account",
            )
        )
    for epic, bucket in sorted(exposure.by_epic.items()):
        limit = policy.max_notional_epic.get(epic, policy.max_notional_epic.get("*"))
        if limit is not None and bucket.get("notional", Decimal(0)) > limit:
            out.append(
                Breach(
                    "max_notional.per_epic",
                    None,
                    f"{epic} notional {bucket['notional']} > {limit}",
                    scope=epic,
                )
            )
    for cls, bucket in sorted(exposure.by_asset_class.items()):
        limit = policy.max_notional_class.get(cls, policy.max_notional_class.get("*"))
        if limit is not None and bucket.get("notional", Decimal(0)) > limit:
            out.append(
                Breach(
                    "max_notional.per_asset_class",
                    None,
                    f"{cls} notional {bucket['notional']} > {limit}",
                    scope=cls,
                )
            )
    if policy.max_leverage is not None and balance and balance > 0:
        if total > policy.max_leverage * balance:
            out.append(
                Breach(
                    "max_leverage",
                    None,
                    f"leverage {total / balance:.4f} > {policy.max_leverage}",
                    scope="account",
                )
            )
    return out
