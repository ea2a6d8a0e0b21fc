"""The Event (what the ledger records and handlers receive), its Status, and ids."""

from __future__ import annotations

import enum
import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

import orjson


class Status(enum.StrEnum):
    """Ledger status of an event (stored and shown as these strings)."""

    QUEUED = "queued"  # accepted, waiting to be claimed
    PROCESSING = "processing"  # claimed by a worker (Redis or ledger claim)
    PROCESSED = "processed"  # done; never processed again
    RETRYING = "retrying"  # failed, waiting for its backoff to pass
    DEAD = "dead"  # attempts exhausted; in godel:queue:dead:<type>
    PURGED = "purged"  # a dead letter an operator threw away; kept in the ledger as a record


# Still to be processed: what a drained ledger has none of.
UNFINISHED = (Status.QUEUED, Status.PROCESSING, Status.RETRYING)
# A worker may claim these at once (PROCESSING only once its claim has expired).
CLAIMABLE = (Status.QUEUED, Status.RETRYING)

_PROCESS_TAG = os.urandom(6).hex()  # 48 random bits per process: ids from two processes differ
_counter = itertools.count()


def new_id() -> str:
    """A time-ordered id: 48 bits of milliseconds, a random per-process tag and a counter,
    as 34 hex digits. Unique without a syscall per id (ingest makes many)."""
    return f"{time.time_ns() // 1_000_000:012x}{_PROCESS_TAG}{next(_counter) & 0xFFFFFFFFFF:010x}"


@dataclass(slots=True)
class Event:
    """One event. `payload_json` is the payload as stored, so it is serialised once."""

    id: str
    type: str
    payload_json: str
    agent_id: str | None = None
    # The id came from the client (an idempotency key), so it may already be in the ledger.
    id_from_client: bool = False
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    seq: int | None = None

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = orjson.loads(self.payload_json)
        return loaded

    def same_as(self, other: Event) -> bool:
        """Both carry one event: same type, agent and payload (compared as JSON values, so
        key order does not matter). What an id sent twice must satisfy."""
        if self.type != other.type or self.agent_id != other.agent_id:
            return False
        return self.payload_json == other.payload_json or self.payload == other.payload
