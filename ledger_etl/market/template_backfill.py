"""Backfilling the bars a chart template needs, through the bar store's own backfill.

The bar store (`ledger_etl.market.backfill.backfill`) owns REST price history and fetches only
the gaps of what it holds; this module resolves the template's universe, checks that the broker
knows every epic before any work, plans the ranges (`template_plan`) and hands each one over.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from ledger_etl.capital.client import CapitalClient
from ledger_etl.capital.epics import unknown_epics
from ledger_etl.errors import InputError
from ledger_etl.intervals import Window
from ledger_etl.market.backfill import BackfillReport, backfill
from ledger_etl.market.template_plan import BarRange
from ledger_etl.market.watchlists import watchlist_epics


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


def run_backfill(
    client: CapitalClient,
    engine: Engine,
    plan: list[BarRange],
    on_range: Callable[[BarRange, BackfillReport], None] = lambda r, report: None,
) -> list[BackfillReport]:
    """Backfill each planned range into the bar store; its reports, in plan order."""
    results = []
    for item in plan:
        report = backfill(client, engine, item.epic, item.resolution, Window(item.start, item.end))
        on_range(item, report)
        results.append(report)
    return results
