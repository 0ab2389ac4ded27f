"""Dagster wiring: resources, partitions, assets, checks, schedules and sensors. Thin by design:
the work happens in `capital`, `ledger`, `statements`, `sync` and `monthly`."""
