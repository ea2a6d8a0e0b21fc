"""The one test harness, shared by the tests and the benchmarks (`python -m bench`):

- settings: the FAST settings, as Settings fields and as a GODEL_* environment;
- wait: `wait_until` and `wait_until_async`;
- process: owned child processes; redis_server, postgres_server: the real servers;
- godel_server: `godel serve` as a subprocess; ledger: the ledger counter and the
  exactly-once assertion.

Tests import servers from `tests.servers` and the in-process app from `tests.harness`.
"""
