"""The one FAST settings set every Godel under test runs with, in process (`Settings(**...)`)
or as a subprocess (its GODEL_* environment, derived here from the same dict)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from godel.config import Settings

TOKEN = "test-admin-token"

# Short timeouts and periods, so a state change shows within a second and a test never
# waits on a production-sized interval. Redis is always the test's own (no embedded one).
FAST: Mapping[str, Any] = MappingProxyType(
    {
        "admin_token": TOKEN,
        "redis_socket_timeout_s": 0.3,
        "redis_connect_timeout_s": 0.3,
        "redis_block_timeout_s": 0.2,
        "probe_backoff_min_s": 0.05,
        "probe_backoff_max_s": 0.3,
        "reconcile_interval_s": 0.3,
        "reconcile_deadline_s": 1.5,
        "metrics_interval_s": 0.3,
        "redis_info_interval_s": 0.3,
        "worker_lease_s": 2.0,
        "retry_backoff_base_ms": 20,
        "retry_backoff_max_ms": 100,
        "rate_limit_hold_ms": 0,  # tests/integration/test_ratelimit.py checks the hold
        "embedded_redis": False,
    }
)


def fast_settings(database_url: str, redis_url: str, **overrides: Any) -> dict[str, Any]:
    """FAST plus the two servers and any overrides, as Settings field names."""
    return {**FAST, "database_url": database_url, "redis_url": redis_url, **overrides}


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def settings_env(settings: Mapping[str, Any]) -> dict[str, str]:
    """`settings` as a process environment: GODEL_<FIELD>=value.

    Settings ignores unknown GODEL_* variables, so a misspelt name would be dropped silently
    there; here it is an error."""
    unknown = set(settings) - set(Settings.model_fields)
    if unknown:
        raise KeyError(f"not Godel settings: {sorted(unknown)}")
    return {
        f"GODEL_{name.upper()}": _env_value(value)
        for name, value in settings.items()
        if value is not None
    }
