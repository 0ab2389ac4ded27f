"""`python -m benchmarks [NAME ...] [-- OPTIONS]`: run every benchmark module, or the named ones.

Options after the names (or after `--`) are passed to each benchmark's `main`, e.g.
`python -m benchmarks fetch --months 3 --latency 0.05`.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(PACKAGE_DIR)])
        if not info.name.startswith("_")
    )


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """Leading bare words are benchmark names; everything from the first option on is theirs."""
    names: list[str] = []
    rest = list(argv)
    while rest and not rest[0].startswith("-"):
        names.append(rest.pop(0))
    if rest and rest[0] == "--":
        rest.pop(0)
    return names, rest


def main(argv: list[str] | None = None) -> int:
    names, options = split_args(sys.argv[1:] if argv is None else argv)
    known = available()
    if names in (["help"], ["list"]) or (options in (["-h"], ["--help"]) and not names):
        print("benchmarks:", ", ".join(known))
        print(__doc__)
        return 0
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(known)}")
        return 2
    status = 0
    for name in names or known:
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"=== benchmark: {name} ===", flush=True)
        status = max(status, int(module.main(options) or 0))
    return status


if __name__ == "__main__":
    sys.exit(main())
