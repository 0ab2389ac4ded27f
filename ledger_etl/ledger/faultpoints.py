"""Named points where crash-safety tests kill the process.

`LEDGER_ETL_KILL_AT=<name>` makes the process SIGKILL itself when it reaches that point, so a test
can prove that a crash there leaves a ledger that a re-run completes exactly. Unset, it is a no-op.
Points: `after_fetch` (rows fetched, nothing written), `mid_upsert` (rows written inside the
open transaction), `before_commit` (fetch log written, transaction not yet committed).
"""

from __future__ import annotations

import os
import signal

POINTS = ("after_fetch", "mid_upsert", "before_commit")


def checkpoint(name: str) -> None:
    if os.environ.get("LEDGER_ETL_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
