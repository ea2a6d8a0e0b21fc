"""The worker: claim → handle → mark processed in the ledger, once → ack.

Connected, it claims from Redis (a Lua batch claim, or BLMOVE when the queue is empty);
in fallback it claims straight from the ledger. It never stops on a Redis error: the Link
turns errors into fallback, and the next loop claims from wherever events are.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence

from sqlalchemy import Connection

from godel import ledger, metrics, queue
from godel.cache import Cache
from godel.config import Settings
from godel.constants import cache_key
from godel.db import Database
from godel.errors import LedgerUnavailable, RedisUnavailable
from godel.events import Event
from godel.handlers import Registry
from godel.ledger import Failure
from godel.link import Link

log = logging.getLogger("godel.worker")


def worker_name(index: int = 0) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{index}"


class Worker:
    """One claim loop. Run several for concurrency; they share nothing but the stores."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        db: Database,
        link: Link,
        registry: Registry,
        cache: Cache | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.db = db
        self.link = link
        self.registry = registry
        self.cache = cache
        self.processed = 0
        self._idle_s = 0.05
        self._last_beat = 0.0

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> int:
        """Loop until `stop` is set (or, with `burst`, until the ledger has nothing open)."""
        log.info("worker %s started", self.name)
        try:
            while not stop.is_set():
                try:
                    handled = await self.run_once(block=not burst)
                except Exception:
                    # A worker must never die quietly; whatever this was, the claims it
                    # holds come back through the reaper or the ledger claim's expiry.
                    log.exception("worker %s: unexpected error; continuing", self.name)
                    await self._idle(stop)
                    continue
                if handled:
                    self._idle_s = 0.05
                    continue
                if burst and await self._drained():
                    break
                if not self.link.connected or burst:
                    await self._idle(stop)
        finally:
            await asyncio.shield(self._leave())
        log.info("worker %s stopped after %d events", self.name, self.processed)
        return self.processed

    async def _idle(self, stop: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(stop.wait(), self._idle_s)
        except TimeoutError:
            self._idle_s = min(self._idle_s * 2, 1.0)

    async def _drained(self) -> bool:
        counts = await self.db.read(ledger.count_by_status)
        return not any(counts.get(s, 0) for s in ("queued", "processing", "retrying"))

    async def _leave(self) -> None:
        if self.link.connected:
            try:
                await self.link.call(lambda r: queue.leave(r, self.name))
            except RedisUnavailable:
                pass

    async def run_once(self, block: bool = False) -> int:
        """Claim and process one batch; returns how many events were claimed."""
        try:
            if self.link.connected:
                return await self._from_redis(block)
            return await self._from_ledger()
        except RedisUnavailable:
            return 0
        except LedgerUnavailable as err:
            log.warning("worker %s: ledger unavailable (%s); backing off", self.name, err)
            await asyncio.sleep(1.0)
            return 0

    async def _from_redis(self, block: bool) -> int:
        batch, lease = self.settings.worker_batch_size, self.settings.worker_lease_s
        ids = await self.link.call(lambda r: queue.claim(r, self.name, batch, lease))
        if not ids and block:
            await self._heartbeat()
            timeout = self.settings.redis_block_timeout_s
            one = await self.link.call(
                lambda r: queue.claim_blocking(r, self.name, timeout), blocking=True
            )
            ids = [one] if one else []
        if not ids:
            return 0
        now = time.time()
        try:
            events = await self.db.read(ledger.fetch_claimable, ids, now)
        except LedgerUnavailable:
            await self._give_back()
            raise
        await self._process(events, ids, claimed_by=None)
        return len(ids)

    async def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_beat >= self.settings.worker_lease_s / 3:
            self._last_beat = now
            await self.link.call(
                lambda r: queue.heartbeat(r, self.name, self.settings.worker_lease_s)
            )

    async def _give_back(self) -> None:
        try:
            await self.link.call(lambda r: queue.requeue_own(r, self.name))
        except RedisUnavailable:
            pass  # the reaper returns them once our lease expires

    async def _from_ledger(self) -> int:
        now = time.time()
        events = await self.db.write(
            ledger.claim_from_ledger,
            self.name,
            self.settings.worker_batch_size,
            now,
            self.settings.worker_lease_s,
        )
        if events:
            await self._process(events, [e.id for e in events], claimed_by=self.name)
        return len(events)

    async def _process(
        self, events: Sequence[Event], claimed: Sequence[str], claimed_by: str | None
    ) -> None:
        ok, failures = await self._run_handlers(events)
        now = time.time()
        try:
            won = await self.db.write(self._commit, ok, failures, now, claimed_by)
        except LedgerUnavailable:
            if claimed_by is None:
                await self._give_back()
            raise
        except Exception:  # a transactional handler raised: settle event by event
            won, failures = await self._commit_one_by_one(ok, failures, now, claimed_by)
        await self._settle(claimed, failures, claimed_by)
        self._account(len(claimed), won, failures)
        await self._invalidate([e for e in ok if e.id in won])

    async def _run_handlers(self, events: Sequence[Event]) -> tuple[list[Event], list[Failure]]:
        ok: list[Event] = []
        failures: list[Failure] = []
        for event in events:
            handlers, _ = self.registry.match(event.type)
            started = time.perf_counter()
            try:
                for fn in handlers:
                    await fn(event)
            except Exception as exc:
                failures.append(self._failure(event, exc))
            else:
                ok.append(event)
            metrics.PROCESSING_SECONDS.observe(time.perf_counter() - started)
        return ok, failures

    def _failure(self, event: Event, exc: BaseException) -> Failure:
        attempts = event.attempts + 1
        base, cap = self.settings.retry_backoff_base_ms, self.settings.retry_backoff_max_ms
        backoff_ms = min(base * 2 ** (attempts - 1), cap)
        return Failure(
            event=event,
            error=f"{type(exc).__name__}: {exc}",
            attempts=attempts,
            dead=attempts >= self.settings.retry_max_attempts,
            available_at=time.time() + backoff_ms / 1000,
        )

    def _commit(
        self,
        conn: Connection,
        ok: Sequence[Event],
        failures: Sequence[Failure],
        now: float,
        claimed_by: str | None,
    ) -> set[str]:
        """One transaction: mark processed (only what we win), apply transactional
        handlers for exactly those, record failures."""
        won = ledger.mark_processed(conn, [e.id for e in ok], now, claimed_by)
        for event in ok:
            if event.id in won:
                for fn in self.registry.match(event.type)[1]:
                    fn(conn, event)
        ledger.record_failures(conn, failures, now, via_redis=claimed_by is None)
        return won

    async def _commit_one_by_one(
        self, ok: Sequence[Event], failures: list[Failure], now: float, claimed_by: str | None
    ) -> tuple[set[str], list[Failure]]:
        won: set[str] = set()
        failures = list(failures)
        for event in ok:
            try:
                won |= await self.db.write(self._commit, [event], [], now, claimed_by)
            except LedgerUnavailable:
                raise
            except Exception as exc:
                log.warning("handler failed for %s (%s): %s", event.id, event.type, exc)
                failures.append(self._failure(event, exc))
        await self.db.write(ledger.record_failures, failures, now, claimed_by is None)
        return won, failures

    async def _settle(
        self, claimed: Sequence[str], failures: Sequence[Failure], claimed_by: str | None
    ) -> None:
        if claimed_by is not None:
            return  # ledger claims: the ledger row already says where the event is
        failed = {f.event.id for f in failures}
        outcome = queue.Outcome(done=[i for i in claimed if i not in failed])
        for f in failures:
            if f.dead:
                outcome.dead.append((f.event.id, f.event.type))
            else:
                outcome.retry[f.event.id] = f.available_at
        try:
            await self.link.call(lambda r: queue.settle(r, self.name, outcome))
        except RedisUnavailable:
            pass  # the ledger is settled; the reaper/reconciler tidy Redis later

    def _account(self, claimed: int, won: set[str], failures: Sequence[Failure]) -> None:
        dead = sum(1 for f in failures if f.dead)
        metrics.EVENTS_PROCESSED.labels("processed").inc(len(won))
        metrics.EVENTS_PROCESSED.labels("retried").inc(len(failures) - dead)
        metrics.EVENTS_PROCESSED.labels("dead").inc(dead)
        metrics.EVENTS_PROCESSED.labels("duplicate").inc(claimed - len(won) - len(failures))
        self.processed += len(won)

    async def _invalidate(self, events: Sequence[Event]) -> None:
        if self.cache is None:
            return
        keys = {cache_key("agent", e.agent_id) for e in events if e.agent_id}
        if keys:
            await self.cache.delete(*keys)
