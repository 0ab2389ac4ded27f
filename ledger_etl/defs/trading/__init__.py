"""Trading state in Dagster: one poll per account materializes the snapshots, the instrument
master and the lifecycles; exposure and governance follow; checks hold the invariants."""
