"""One typed HealthReport: what GET /health answers, the stream's status messages and the
dashboard start from, and what `godel status` prints."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from godel import metrics
from godel.redaction import redact_url


@dataclass(frozen=True, slots=True)
class LinkReport:
    state: str
    since: float
    reason: str | None
    last_error: str | None
    redis_url: str


@dataclass(frozen=True, slots=True)
class ReplayReport:
    replayed: int  # by the last recovery
    duration_s: float
    at: float | None
    replayed_total: int  # since this process started
    reconciled_total: int


@dataclass(frozen=True, slots=True)
class RedisMemory:
    """As Godel last read it from INFO (every GODEL_REDIS_INFO_INTERVAL_S)."""

    used: int
    max: int
    ratio: float | None
    policy_safe: bool
    aof_enabled: bool

    @classmethod
    def from_gauges(cls) -> RedisMemory:
        used = metrics.read(metrics.REDIS_USED_MEMORY)
        cap = metrics.read(metrics.REDIS_MAXMEMORY)
        return cls(
            used=int(used),
            max=int(cap),
            ratio=round(used / cap, 4) if cap else None,
            policy_safe=bool(metrics.read(metrics.REDIS_POLICY_SAFE)),
            aof_enabled=bool(metrics.read(metrics.REDIS_AOF_ENABLED)),
        )


@dataclass(frozen=True, slots=True)
class HealthReport:
    status: str  # "ok" while the ledger answers, else "degraded"
    link: LinkReport
    database: str  # "ok" or "unavailable: <reason>"
    queues: dict[str, Any] | None  # None while Redis is unreachable
    undispatched: int | None  # None while the ledger is unreachable
    events: dict[str, int]  # ledger rows per status
    replay: ReplayReport
    workers: list[str]
    uptime_s: float
    redis_memory: RedisMemory
    at: float = field(default_factory=time.time)

    @property
    def state(self) -> str:
        return self.link.state

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = self.link.state
        return out


def link_report(described: dict[str, Any], url: str) -> LinkReport:
    return LinkReport(
        state=described["state"],
        since=described["since"],
        reason=described["reason"],
        last_error=described["last_error"],
        redis_url=redact_url(url),
    )
