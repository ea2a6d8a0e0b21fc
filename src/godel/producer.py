"""The Producer: publish events from Python with the API's guarantees, without an HTTP hop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from godel.config import Settings
from godel.intake import parse_event

if TYPE_CHECKING:
    from godel.pipeline.ingest import Ingest
    from godel.runtime import Runtime


class Producer:
    """Publish events durably:

        async with Producer() as producer:
            event_id = await producer.publish("agent.status", {"status": "busy"},
                                              agent_id="a-1")

    Standing alone it opens its own ledger and Link (and upgrades an SQLite ledger);
    given an `ingest` (the API's own), it shares that one's group commit.
    """

    def __init__(self, settings: Settings | None = None, *, ingest: Ingest | None = None) -> None:
        self.settings = settings or Settings()
        self._ingest = ingest
        self._owned: Runtime | None = None

    async def __aenter__(self) -> Self:
        if self._ingest is None:
            from godel.runtime import Runtime

            self._owned = Runtime(self.settings)
            await self._owned.start(workers=0, maintenance=False)
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
