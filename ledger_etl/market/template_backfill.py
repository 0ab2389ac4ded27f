"""Backfilling the bars a chart template needs, through the bar store's own backfill.

The bar store (`ledger_etl.market.backfill.backfill_bars`) owns REST price history; this module
only resolves the template's universe, checks that the broker knows every epic before any work,
plans the ranges (`template_plan`) and hands each one over. Without a bar store in this
installation the plan is still computed and shown, and `BarStoreUnavailable` says why nothing
was fetched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.epics import unknown_epics
from ledger_etl.errors import InputError, LedgerEtlError
from ledger_etl.market.template_plan import BarRange
from ledger_etl.market.watchlists import watchlist_epics

BACKFILL_MODULE = "ledger_etl.market.backfill"
BACKFILL_FUNCTION = "backfill_bars"


class BarStoreUnavailable(LedgerEtlError):
    """This installation has no price-bar store to backfill into."""


class UnknownEpics(InputError):
    """Epics the broker does not know (404 error.not-found.epic)."""

    def __init__(self, where: str, epics: list[str]) -> None:
        self.epics = epics
        super().__init__(
            f"{where}: the broker knows no market {', '.join(repr(e) for e in epics)} "
            "(404 error.not-found.epic); fix the epic or remove it"
        )


def template_universe(engine: Engine, document: dict[str, Any]) -> list[str]:
    """The template's epics, or the current members of its watchlist (stored by
    `ledger-etl watchlists`)."""
    instruments = document["instruments"]
    if "epics" in instruments:
        return list(instruments["epics"])
    epics = watchlist_epics(engine, instruments["watchlist"])
    if not epics:
        raise InputError(f"watchlist {instruments['watchlist']!r} has no members to chart")
    return epics


def check_epics(client: CapitalClient, epics: list[str], where: str) -> None:
    missing = unknown_epics(client, epics)
    if missing:
        raise UnknownEpics(where, missing)


def bar_backfill() -> Callable[..., Any] | None:
    """`backfill_bars` of the bar store, or None when this installation has none."""
    try:
        module = importlib.import_module(BACKFILL_MODULE)
    except ModuleNotFoundError as error:
        if error.name != BACKFILL_MODULE:
            raise
        return None
    return getattr(module, BACKFILL_FUNCTION, None)


def run_backfill(
    client: CapitalClient,
    engine: Engine,
    plan: list[BarRange],
    on_range: Callable[[BarRange, Any], None] = lambda r, result: None,
) -> list[Any]:
    """Hand each planned range to the bar store's backfill; its results, in plan order."""
    backfill = bar_backfill()
    if backfill is None:
        raise BarStoreUnavailable(
            f"the price-bar store is not available in this installation "
            f"({BACKFILL_MODULE}.{BACKFILL_FUNCTION} is missing): nothing was fetched; "
            "the plan above lists the ranges a backfill would fetch"
        )
    results = []
    for item in plan:
        result = backfill(
            client, engine, epic=item.epic, resolution=item.resolution,
            start=item.start, end=item.end,
        )  # fmt: skip
        on_range(item, result)
        results.append(result)
    return results
