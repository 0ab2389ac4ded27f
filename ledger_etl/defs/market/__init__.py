"""Market data in Dagster: the REST backfill of price bars per day x epic, and its checks.

The stream is its own supervised process (`ledger-etl stream`); Dagster backfills over REST,
checks completeness, and reads the health the stream records.
"""
