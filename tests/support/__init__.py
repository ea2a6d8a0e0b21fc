"""Real servers and processes for tests; import them from `tests.servers`."""
