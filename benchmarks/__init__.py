"""Benchmarks: performance figures printed for people to read, never asserted by the test suite.

Each module in this package exposes `main(argv: list[str]) -> int`. Run them all with
`python -m benchmarks`, or some of them by name: `python -m benchmarks fetch --months 3`.
"""
