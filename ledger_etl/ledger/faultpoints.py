"""Named points where crash-safety tests kill the process.

`LEDGER_ETL_KILL_AT=<name>` (or `<name>:<n>` for the n-th time the point is reached) makes the
process SIGKILL itself there, so a test can prove that a crash at that point leaves a ledger that a
re-run completes exactly. Unset, it is a no-op. Points: `after_fetch` (rows fetched, nothing
written), `mid_upsert` (rows written inside the open transaction), `before_commit` (fetch log
written, transaction not yet committed), `after_version_rename` (a statement version folder
renamed into place, `versions.json` not yet rewritten).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from ledger_etl.settings import kill_point

POINTS = ("after_fetch", "mid_upsert", "before_commit", "after_version_rename")
_reached: Counter[str] = Counter()


def checkpoint(name: str) -> None:
    target = kill_point()
    if not target:
        return
    point, _, nth = target.partition(":")
    if point != name:
        return
    _reached[name] += 1
    if _reached[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
