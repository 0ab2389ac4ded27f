"""`/_sim/truth/bars` and `/_sim/stream`: the ground truth of bars and the state of the stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ledger_etl.simulator.admin import _instant, _reply
from ledger_etl.simulator.errors import ApiError
from ledger_etl.simulator.prices import RESOLUTIONS, epoch_second
from ledger_etl.simulator.stream_bars import BAR_TYPES, truth_bars

if TYPE_CHECKING:
    from ledger_etl.simulator.app import Reply, Request, Simulator

MAX_TRUTH_BARS = 200_000


def get_truth_bars(sim: Simulator, request: Request) -> Reply:
    """Every closed bar of `epic` opening in `[from, to)` (ISO 8601; `to` defaults to now)."""
    params = request.params
    epic = params.get("epic", "")
    series = sim.market.series(epic)  # 404 error.not-found.epic
    resolution = params.get("resolution", "MINUTE")
    if resolution not in RESOLUTIONS:
        raise ApiError(400, "error.invalid.resolution")
    bar_type = params.get("type", "classic")
    if bar_type not in BAR_TYPES:
        raise ApiError(400, "error.invalid.type")
    now = sim.clock.now()
    start = epoch_second(_instant(params, "from"))
    end = epoch_second(min(_instant(params, "to", now), now))
    if (end - start) // RESOLUTIONS[resolution] > MAX_TRUTH_BARS:
        raise ApiError(413, "error.truth.too-many-rows")
    bars = truth_bars(series, resolution, bar_type, start, end, epoch_second(now))
    return _reply(200, {"epic": epic, "resolution": resolution, "type": bar_type, "bars": bars})


def get_stream(sim: Simulator, request: Request) -> Reply:
    return _reply(200, sim.stream.describe())
