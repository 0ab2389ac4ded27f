"""`bars_complete` and `bars_match_derived` (per day x epic), and `stream_healthy` (what
`ledger-etl stream` records)."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from ledger_etl.defs.market.assets import RESOLUTION, day_epics, day_window, price_bars
from ledger_etl.defs.resources import LedgerResource
from ledger_etl.intervals import Window
from ledger_etl.market.bars import bar_gaps, read_bars
from ledger_etl.market.derive import Comparison, compare_derived
from ledger_etl.settings import stream_health_path

MAX_MESSAGE_AGE_S = 120.0
MAX_HEALTH_AGE_S = 300.0
MAX_RECONNECTS_PER_HOUR = 30.0


@dg.asset_check(asset=price_bars, blocking=False,
                description="No bar missing or provisional inside opening hours.")  # fmt: skip
def bars_complete(
    context: dg.AssetCheckExecutionContext, ledger: LedgerResource
) -> dg.AssetCheckResult:
    failures, checked = {}, {}
    now = datetime.now(UTC).replace(microsecond=0)
    for day, epic in day_epics(context):
        window = day_window(day)
        if window.start >= now:
            continue
        window = Window(window.start, min(window.end, now - timedelta(minutes=2)))
        gaps = bar_gaps(ledger.engine(), epic, RESOLUTION, window)
        stored = read_bars(ledger.engine(), epic, RESOLUTION, window)
        provisional = [r["t"].isoformat() for r in stored if not r["final"]]
        checked[f"{day}|{epic}"] = "complete"
        if gaps or provisional:
            failures[f"{day}|{epic}"] = {"gaps": [str(g) for g in gaps][:50],
                                          "provisional": provisional[:50]}  # fmt: skip
    return dg.AssetCheckResult(
        passed=not failures,
        metadata={
            "failures": dg.MetadataValue.json(failures),
            "checked": dg.MetadataValue.json(checked),
        },
    )


def health_problems(health: dict, now: datetime) -> list[str]:
    """Why a recorded stream health is not healthy (empty: healthy)."""
    problems = []
    recorded = datetime.fromisoformat(health["recorded_at"])
    if (now - recorded).total_seconds() > MAX_HEALTH_AGE_S:
        problems.append(f"health recorded {recorded.isoformat()}: the stream is not running")
    age = health.get("last_message_age_s")
    if age is None or age > MAX_MESSAGE_AGE_S:
        problems.append(f"last message {age} s ago")
    hours = max(health.get("uptime_s", 0) / 3600, 1 / 60)
    if health.get("reconnects", 0) / hours > MAX_RECONNECTS_PER_HOUR:
        problems.append(f"{health['reconnects']} reconnects in {hours:.2f} h")
    return problems


@dg.asset_check(
    asset=price_bars,
    blocking=False,
    description="The stream runs, is fresh, and is not reconnecting in a loop.",
)
def stream_healthy(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    path = stream_health_path()
    try:
        health = json.loads(path.read_text(encoding="utf-8"))
        problems = health_problems(health, datetime.now(UTC))
    except (OSError, ValueError, KeyError) as exc:
        health, problems = {}, [f"no readable health at {path}: {exc}"]
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"problems": dg.MetadataValue.json(problems),
                  "health": dg.MetadataValue.json(health)},
    )  # fmt: skip


# Resolutions whose bars fit in a day partition; WEEK bars are checked with the CLI.
DERIVED_CHECKED = ("MINUTE_5", "MINUTE_15", "MINUTE_30", "HOUR", "HOUR_4", "DAY")


@dg.asset_check(
    asset=price_bars,
    blocking=False,
    description="Bars derived from the stored MINUTE bars equal the broker's stored bars of "
    "larger resolutions wherever both exist.",
)
def bars_match_derived(
    context: dg.AssetCheckExecutionContext, ledger: LedgerResource
) -> dg.AssetCheckResult:
    total, per = Comparison(), {}
    for day, epic in day_epics(context):
        for resolution in DERIVED_CHECKED:
            result = compare_derived(ledger.engine(), epic, resolution, day_window(day), RESOLUTION)
            total.add(result)
            if result.compared or result.mismatches:
                per[f"{day}|{epic}|{resolution}"] = {
                    "compared": result.compared,
                    "mismatches": len(result.mismatches),
                }
    return dg.AssetCheckResult(
        passed=total.matched,
        metadata={
            "compared": total.compared,
            "broker_only": total.broker_only,
            "mismatches": dg.MetadataValue.json([m.as_dict() for m in total.mismatches[:50]]),
            "per_resolution": dg.MetadataValue.json(per),
        },
    )


CHECKS = [bars_complete, stream_healthy, bars_match_derived]
