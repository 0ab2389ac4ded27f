"""Models of the live-state endpoints: positions, working orders, confirms and market details.

Same rules as `models.py`: amounts are exact Decimal (bodies are decoded with
`parse_float=Decimal`), instants are UTC-aware (always taken from the `...UTC` twin, never from
the local field, whose offset moves), unknown keys are kept, and unknown enum values are
flagged by `unknown_enum_fields`, never dropped. A row that cannot be used becomes a
`RowProblem` with its reason; one bad row never hides the others.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from .models import (
    DIRECTIONS,
    Amount,
    IdText,
    OptionalAmount,
    RowProblem,
    UtcDateTime,
    _parse_row,
    _Payload,
)

ORDER_TYPES = frozenset({"LIMIT", "STOP"})
TIME_IN_FORCE = frozenset({"GOOD_TILL_CANCELLED", "GOOD_TILL_DATE"})
DEAL_STATUSES = frozenset({"ACCEPTED", "REJECTED"})
CONFIRM_STATUSES = frozenset({"OPEN", "AMENDED", "CLOSED", "DELETED", "PARTIALLY_CLOSED"})
AFFECTED_STATUSES = frozenset({"OPENED", "AMENDED", "DELETED", "FULLY_CLOSED", "PARTIALLY_CLOSED"})
MARGIN_UNITS = frozenset({"PERCENTAGE", "POINTS"})
INSTRUMENT_TYPES = frozenset({"COMMODITIES", "SHARES", "CURRENCIES", "INDICES", "CRYPTOCURRENCIES"})


def _unknown(checks: tuple[tuple[str, Any, frozenset[str]], ...]) -> list[str]:
    return [name for name, value, known in checks if value is not None and value not in known]


class MarketSummary(_Payload):
    """The `market` / `marketData` block beside a position or working order."""

    epic: str = Field(min_length=1)
    instrument_name: str | None = Field(default=None, alias="instrumentName")
    instrument_type: str | None = Field(default=None, alias="instrumentType")
    expiry: str | None = None
    lot_size: OptionalAmount = Field(default=None, alias="lotSize")
    bid: OptionalAmount = None
    offer: OptionalAmount = None
    market_status: str | None = Field(default=None, alias="marketStatus")
    update_time_utc: UtcDateTime | None = Field(default=None, alias="updateTimeUTC")


class PositionData(_Payload):
    """The `position` block of `GET /positions`; `size` is the remaining size, always > 0."""

    deal_id: IdText = Field(alias="dealId", min_length=1)
    deal_reference: str | None = Field(default=None, alias="dealReference")
    working_order_id: str | None = Field(default=None, alias="workingOrderId")
    created_date_utc: UtcDateTime = Field(alias="createdDateUTC")
    direction: str
    size: Amount
    level: Amount
    upl: OptionalAmount = None
    currency: str | None = None
    leverage: OptionalAmount = None
    contract_size: OptionalAmount = Field(default=None, alias="contractSize")
    guaranteed_stop: bool = Field(default=False, alias="guaranteedStop")
    trailing_stop: bool = Field(default=False, alias="trailingStop")
    stop_level: OptionalAmount = Field(default=None, alias="stopLevel")
    stop_distance: OptionalAmount = Field(default=None, alias="stopDistance")
    profit_level: OptionalAmount = Field(default=None, alias="profitLevel")
    profit_distance: OptionalAmount = Field(default=None, alias="profitDistance")


class OpenPosition(_Payload):
    position: PositionData
    market: MarketSummary

    def unknown_enum_fields(self) -> list[str]:
        return _unknown((("position.direction", self.position.direction, DIRECTIONS),))


class WorkingOrderData(_Payload):
    deal_id: IdText = Field(alias="dealId", min_length=1)
    epic: str = Field(min_length=1)
    direction: str
    order_type: str = Field(alias="orderType")
    order_size: Amount = Field(alias="orderSize")
    order_level: Amount = Field(alias="orderLevel")
    time_in_force: str | None = Field(default=None, alias="timeInForce")
    good_till_date_utc: UtcDateTime | None = Field(default=None, alias="goodTillDateUTC")
    created_date_utc: UtcDateTime = Field(alias="createdDateUTC")
    currency_code: str | None = Field(default=None, alias="currencyCode")
    leverage: OptionalAmount = None
    guaranteed_stop: bool = Field(default=False, alias="guaranteedStop")
    trailing_stop: bool = Field(default=False, alias="trailingStop")
    stop_level: OptionalAmount = Field(default=None, alias="stopLevel")
    stop_distance: OptionalAmount = Field(default=None, alias="stopDistance")
    profit_level: OptionalAmount = Field(default=None, alias="profitLevel")
    profit_distance: OptionalAmount = Field(default=None, alias="profitDistance")


class WorkingOrder(_Payload):
    working_order_data: WorkingOrderData = Field(alias="workingOrderData")
    market_data: MarketSummary = Field(alias="marketData")

    def unknown_enum_fields(self) -> list[str]:
        data = self.working_order_data
        return _unknown(
            (
                ("workingOrderData.direction", data.direction, DIRECTIONS),
                ("workingOrderData.orderType", data.order_type, ORDER_TYPES),
                ("workingOrderData.timeInForce", data.time_in_force, TIME_IN_FORCE),
            )
        )


class AffectedDeal(_Payload):
    deal_id: IdText = Field(alias="dealId")
    status: str | None = None


class Confirm(_Payload):
    """`GET /confirms/{dealReference}`; its `dealId` is the order's, the opened position is in
    `affectedDeals` (and on a close it may name the opening deal)."""

    date: UtcDateTime | None = None
    status: str | None = None
    reason: str | None = None
    reject_reason: str | None = Field(default=None, alias="rejectReason")
    deal_status: str = Field(alias="dealStatus")
    epic: str | None = None
    deal_reference: str = Field(alias="dealReference", min_length=1)
    deal_id: IdText | None = Field(default=None, alias="dealId")
    affected_deals: list[AffectedDeal] = Field(default_factory=list, alias="affectedDeals")
    level: OptionalAmount = None
    size: OptionalAmount = None
    direction: str | None = None
    guaranteed_stop: bool | None = Field(default=None, alias="guaranteedStop")
    trailing_stop: bool | None = Field(default=None, alias="trailingStop")
    stop_level: OptionalAmount = Field(default=None, alias="stopLevel")
    profit_level: OptionalAmount = Field(default=None, alias="profitLevel")

    @property
    def accepted(self) -> bool:
        return self.deal_status == "ACCEPTED"

    def unknown_enum_fields(self) -> list[str]:
        checks: list[tuple[str, Any, frozenset[str]]] = [
            ("dealStatus", self.deal_status, DEAL_STATUSES),
            ("status", self.status, CONFIRM_STATUSES),
            ("direction", self.direction, DIRECTIONS),
        ]
        checks += [
            (f"affectedDeals.{i}.status", d.status, AFFECTED_STATUSES)
            for i, d in enumerate(self.affected_deals)
        ]
        return _unknown(tuple(checks))


class InstrumentInfo(_Payload):
    epic: str = Field(min_length=1)
    symbol: str | None = None
    name: str | None = None
    type: str | None = None
    currency: str | None = None
    lot_size: OptionalAmount = Field(default=None, alias="lotSize")
    margin_factor: OptionalAmount = Field(default=None, alias="marginFactor")
    margin_factor_unit: str | None = Field(default=None, alias="marginFactorUnit")
    guaranteed_stop_allowed: bool | None = Field(default=None, alias="guaranteedStopAllowed")
    expiry: str | None = None


class MarketSnapshot(_Payload):
    """Market details' `snapshot`; its `updateTime` has no UTC twin, so it is kept as text."""

    market_status: str | None = Field(default=None, alias="marketStatus")
    bid: OptionalAmount = None
    offer: OptionalAmount = None
    update_time: str | None = Field(default=None, alias="updateTime")
    decimal_places_factor: int | None = Field(default=None, alias="decimalPlacesFactor")


class MarketDetails(_Payload):
    """One `GET /markets/{epic}` body, or one element of `/markets?epics=`'s `marketDetails`."""

    instrument: InstrumentInfo
    dealing_rules: dict[str, Any] = Field(default_factory=dict, alias="dealingRules")
    snapshot: MarketSnapshot | None = None

    @property
    def epic(self) -> str:
        return self.instrument.epic

    def unknown_enum_fields(self) -> list[str]:
        inst = self.instrument
        return _unknown(
            (
                ("instrument.type", inst.type, INSTRUMENT_TYPES),
                ("instrument.marginFactorUnit", inst.margin_factor_unit, MARGIN_UNITS),
            )
        )


def parse_position(row: Any) -> OpenPosition | RowProblem:
    return _parse_row(OpenPosition, row)


def parse_working_order(row: Any) -> WorkingOrder | RowProblem:
    return _parse_row(WorkingOrder, row)


def parse_market_details(row: Any) -> MarketDetails | RowProblem:
    return _parse_row(MarketDetails, row)


def parse_confirm(row: Any) -> Confirm | RowProblem:
    return _parse_row(Confirm, row)
