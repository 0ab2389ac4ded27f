"""Dagster wiring of the history ledger: month x account partitions, the raw and ledger assets,
the monthly statement, their checks, schedules and sensors."""
