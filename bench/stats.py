"""Summaries of repeated measurements and the result rows the report prints."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"  # the target was met in this run
    MISS = "miss"  # measured, target not met
    INFO = "info"  # measured, no target applies
    UNAVAILABLE = "unavailable"  # the Godel side (or a peer) could not be measured; see note
    ERROR = "error"  # the benchmark itself failed; see note


@dataclass(frozen=True)
class Stat:
    """Median, min and max of one figure over repetitions (values kept for the JSON)."""

    median: float
    min: float
    max: float
    values: tuple[float, ...]
    unit: str

    @classmethod
    def of(cls, values: list[float], unit: str) -> Stat:
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values), tuple(values), unit)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "values": list(self.values)}


@dataclass
class Result:
    """One table row: the Godel figure, the peers' figures, ratios and the verdict."""

    id: str  # the benchmark name accepted by --only
    name: str
    target: str
    godel: Stat | None = None
    peers: dict[str, Stat] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)  # godel / peer, by peer name
    status: Status = Status.INFO
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)  # JSON only: raw extras per row
    # What Godel ran as: `producer` (in this process), `api-only` (`godel serve`,
    # GODEL_WORKERS=0), `default` (`godel serve` with its worker inside), `worker`
    # (`godel worker` alone), or "" (no Godel process: the cache row).
    topology: str = ""
    ledger: str = ""  # sqlite or postgresql
    client: str = ""  # what drove the load: python (in process), python-raw/httpx, wrk
    # Link transitions into fallback seen during the row (None: not watched; rows that kill
    # Redis are not watched: there it is the point).
    fallbacks: int | None = None

    def saw_fallbacks(self, n: int) -> None:
        self.fallbacks = (self.fallbacks or 0) + n

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "target": self.target,
            "godel": self.godel.to_json() if self.godel else None,
            "peers": {k: v.to_json() for k, v in self.peers.items()},
            "ratios": self.ratios,
            "status": self.status.value,
            "note": self.note,
            "details": self.details,
            "topology": self.topology,
            "ledger": self.ledger,
            "client": self.client,
            "link_fallbacks": self.fallbacks,
        }


def rates(reps: list[dict[str, Any]]) -> list[float]:
    return [float(r["rate"]) for r in reps]


def verdict(ok: bool) -> Status:
    return Status.PASS if ok else Status.MISS
