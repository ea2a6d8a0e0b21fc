"""The Producer: publish events from Python with the API's guarantees, without an HTTP hop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from godel.config import Settings
from godel.errors import ConfigError
from godel.intake import parse_event

if TYPE_CHECKING:
    from godel.pipeline.ingest import Ingest
    from godel.runtime import Runtime


class Producer:
    """Publish events durably into the ledger a Godel server reads:

        async with Producer() as producer:      # GODEL_DATABASE_URL must name that ledger
            event_id = await producer.publish("agent.status", {"status": "busy"},
                                              agent_id="a-1")

    Standing alone it needs the server's ledger (`GODEL_DATABASE_URL`: refusing to guess,
    since a private default ledger would swallow events no server ever sees) and, when set,
    its Redis (`GODEL_REDIS_URL`); without a Redis URL it writes to the ledger only, and the
    server's periodic replay (every GODEL_RECONCILE_INTERVAL_S) pushes the events on.
    Given an `ingest` (the API's own), it shares that one's group commit.
    """

    def __init__(self, settings: Settings | None = None, *, ingest: Ingest | None = None) -> None:
        self.settings = settings or Settings()
        self._ingest = ingest
        self._owned: Runtime | None = None

    async def __aenter__(self) -> Self:
        if self._ingest is None:
            from godel.runtime import Runtime

            if not self.settings.database_url:
                raise ConfigError(
                    "the Producer writes into the ledger a Godel server reads: set "
                    "GODEL_DATABASE_URL to that server's (e.g. sqlite:///path/.godel/godel.db "
                    "or its PostgreSQL URL)"
                )
            self._owned = Runtime(self.settings)
            fast_lane = self.settings.redis_url is not None
            await self._owned.start(workers=0, maintenance=False, fast_lane=fast_lane)
            self._ingest = self._owned.ingest
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._owned is not None:
            await self._owned.stop()
            self._owned = None
            self._ingest = None

    @property
    def ingest(self) -> Ingest:
        if self._ingest is None:
            raise RuntimeError("use `async with Producer(...)` before publishing")
        return self._ingest

    async def publish(
        self,
        type: str,
        payload: dict[str, Any] | None = None,
        *,
        id: str | None = None,
        agent_id: str | None = None,
    ) -> str:
        """Record one event durably and return its id."""
        ack = await self.publish_many(
            [{"type": type, "payload": payload or {}, "id": id, "agent_id": agent_id}]
        )
        return ack[0]

    async def publish_many(self, events: Sequence[dict[str, Any]]) -> list[str]:
        """Record a batch in one commit; returns the ids in order."""
        limit = self.settings.max_payload_bytes
        parsed = [parse_event({k: v for k, v in e.items() if v is not None}, limit) for e in events]
        ack = await self.ingest.submit(parsed)
        return ack.ids
