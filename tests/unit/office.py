"""LibreOffice for the tests that render a statement the way a person opens or prints it.

`scripts/run-tests.sh` installs it where it can (root with apt-get). Missing, such a test is
skipped locally with the reason and fails in CI (CI=true), where it must run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def soffice() -> str:
    found = shutil.which("soffice") or shutil.which("libreoffice")
    if found is None:
        why = "LibreOffice (soffice) is not installed: apt-get install libreoffice-calc-nogui"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return found


def convert(source: Path, target_filter: str, work: Path) -> Path:
    """`source` converted by LibreOffice into `work` (a private profile there); the output."""
    work.mkdir(parents=True, exist_ok=True)
    copy = work / source.name
    shutil.copy(source, copy)
    subprocess.run(
        [soffice(), "--headless", f"-env:UserInstallation=file://{work}/profile",
         "--convert-to", target_filter, "--outdir", str(work), str(copy)],
        check=True, timeout=180, capture_output=True,
    )  # fmt: skip
    return work / f"{source.stem}.{target_filter.split(':')[0]}"
