"""The moving parts: ingest, workers, retries, recovery, dead letters, upkeep."""
