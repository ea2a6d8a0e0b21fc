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
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from godel import metrics
from godel.config import Settings
from godel.errors import LedgerUnavailable, RedisUnavailable
from godel.event import UNFINISHED, Event
from godel.fastlane.link import try_call
from godel.fastlane.queue import FastLane, Outcome
from godel.handlers import Registry
from godel.pipeline.retry import RetryPolicy
from godel.pipeline.roster import Roster
from godel.store import counts as store_counts
from godel.store import ledger
from godel.store.database import Database
from godel.store.ledger import Failure

log = logging.getLogger("godel.worker")
AfterCommit = Callable[[Sequence[Event]], Awaitable[None]]
# After a batch, a worker whose queue runs dry keeps batching (see Worker._more) this long.
LINGER_AFTER_BUSY_S = 0.01


@dataclass(slots=True)
class Quick:
    """Events read and marked processed in one transaction (no async handler to run)."""

    events: list[Event]
    won: set[str]


def worker_name(index: int = 0) -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{index}"


class Worker:
    """One claim loop. Run several for concurrency; they share nothing but the stores."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        db: Database,
        lane: FastLane,
        registry: Registry,
        after_commit: AfterCommit | None = None,
        roster: Roster | None = None,
    ) -> None:
        self.name = name
        self.roster = roster
        self.settings = settings
        self.db = db
        self.lane = lane
        self.registry = registry
        self.retry = RetryPolicy.from_settings(settings)
        self.after_commit = after_commit
        self.processed = 0
        self._idle_s = 0.05
        self._last_beat = 0.0
        self._next: list[str] = []  # claimed with the last ack, processed next
        self._stranded = False  # a Redis call failed: our processing list may hold ids
        self._busy_until = 0.0  # monotonic: the last batch ended just now (events flowing)

    @property
    def connected(self) -> bool:
        return self.lane.link.connected

    async def run(self, stop: asyncio.Event, *, burst: bool = False) -> int:
        """Loop until `stop` is set (or, with `burst`, until the ledger has nothing open)."""
        log.info("worker %s started", self.name)
        if self.roster is not None:
            await self.roster.join(self.name)
        try:
            while not stop.is_set():
                if self.roster is not None:
                    await self.roster.beat(self.name, self.processed)
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
                if not self.connected or burst:
                    await self._idle(stop)
        finally:
            await asyncio.shield(try_call(self.lane.leave(self.name), None))
            if self.roster is not None:
                await asyncio.shield(self.roster.leave(self.name, self.processed))
        log.info("worker %s stopped after %d events", self.name, self.processed)
        return self.processed

    async def _idle(self, stop: asyncio.Event) -> None:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), self._idle_s)
            return
        self._idle_s = min(self._idle_s * 2, 1.0)

    async def _drained(self) -> bool:
        counts = await self.db.read(store_counts.by_status)
        return not any(counts.get(s, 0) for s in UNFINISHED)

    async def run_once(self, block: bool = False) -> int:
        """Claim and process one batch; returns how many events were claimed."""
        try:
            if self.connected:
                return await self._from_redis(block)
            if self._next:  # claimed from Redis before the lane closed: back to pending later
                self._next, self._stranded = [], True
            return await self._from_ledger()
        except RedisUnavailable:
            # The call may have reached Redis (a slow answer): ids may sit in our processing
            # list that nobody works on; they go back to pending before the next claim.
            self._stranded = True
            return 0
        except LedgerUnavailable as err:
            log.warning("worker %s: ledger unavailable (%s); backing off", self.name, err)
            await asyncio.sleep(1.0)
            return 0

    async def _from_redis(self, block: bool) -> int:
        s = self.settings
        if self._stranded:
            self._next = []
            await self.lane.requeue_own(self.name)
            self._stranded = False
        ids, self._next = self._next, []
        if not ids:
            ids = await self.lane.claim(self.name, s.worker_batch_size, s.worker_lease_s)
        if not ids and block:
            await self._heartbeat()
            one = await self.lane.claim_blocking(self.name, s.redis_block_timeout_s)
            ids = [one] if one else []
        if not ids:
            return 0
        if len(ids) < s.worker_batch_size:
            ids += await self._more(len(ids))
        try:
            events, quick = await self._take(ids)
        except LedgerUnavailable:
            await try_call(self.lane.requeue_own(self.name), 0)  # else the reaper does
            raise
        await self._process(events, ids, claimed_by=None, quick=quick)
        self._busy_until = time.monotonic() + LINGER_AFTER_BUSY_S
        return len(ids)

    async def _more(self, have: int) -> list[str]:
        """A short batch: the queue ran dry. While events keep coming (the last batch ended
        a moment ago), wait a little and take what arrived meanwhile too: one batch of
        several costs the ledger and Redis about what one event costs. An idle worker
        takes what it has at once."""
        s = self.settings
        if time.monotonic() > self._busy_until or not s.worker_linger_ms:
            return []
        await asyncio.sleep(s.worker_linger_ms / 1000)
        return await self.lane.claim(self.name, s.worker_batch_size - have, s.worker_lease_s)

    async def _take(self, ids: Sequence[str]) -> tuple[list[Event], Quick | None]:
        """Read the claimed events and, in the same transaction, mark processed those no
        async handler has to see first (no handler, or transactional ones only): one trip
        to the ledger for them instead of two. None for `quick` when a transactional handler
        raised: the caller settles them event by event."""
        now = time.time()
        try:
            return await self.db.write(self._read_and_commit, ids, now)
        except LedgerUnavailable:
            raise
        except Exception:  # a transactional handler raised: nothing of this was committed
            return await self.db.read(ledger.fetch_claimable, ids, now), None

    def _read_and_commit(
        self, conn: Any, ids: Sequence[str], now: float
    ) -> tuple[list[Event], Quick]:
        events = ledger.fetch_claimable(conn, ids, now)
        quick = [e for e in events if not self.registry.match(e.type)[0]]
        won = self._commit(conn, quick, [], now, None) if quick else set()
        return events, Quick(quick, won)

    async def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_beat >= self.settings.worker_lease_s / 3:
            self._last_beat = now
            await self.lane.heartbeat(self.name, self.settings.worker_lease_s)

    async def _from_ledger(self) -> int:
        s = self.settings
        events = await self.db.write(
            ledger.claim_from_ledger, self.name, s.worker_batch_size, time.time(), s.worker_lease_s
        )
        if events:
            await self._process(events, [e.id for e in events], claimed_by=self.name)
        return len(events)

    async def _process(
        self,
        events: Sequence[Event],
        claimed: Sequence[str],
        claimed_by: str | None,
        quick: Quick | None = None,
    ) -> None:
        if quick is not None:  # marked already, with the read
            marked = {e.id for e in quick.events}
            events = [e for e in events if e.id not in marked]
            for event in quick.events:
                self._observe(event, 0.0)
        ok, failures = await self._run_handlers(events)
        now = time.time()
        try:
            won = (
                await self.db.write(self._commit, ok, failures, now, claimed_by)
                if ok or failures
                else set()
            )
        except LedgerUnavailable:
            if claimed_by is None:
                await try_call(self.lane.requeue_own(self.name), 0)
            raise
        except Exception:  # a transactional handler raised: settle event by event
            won, failures = await self._commit_one_by_one(ok, failures, now, claimed_by)
        if quick is not None:
            won |= quick.won
            ok = [*quick.events, *ok]
        if claimed_by is None:  # ledger claims: the ledger row already says where it is
            await self._settle(self._outcome(claimed, failures))
        self._account(len(claimed), won, failures)
        for failure in failures:
            self._log_failure(failure)
        if self.after_commit is not None:
            await self.after_commit([e for e in ok if e.id in won])

    async def _settle(self, outcome: Outcome) -> None:
        """Ack the batch; when nothing failed, claim the next one in the same round trip."""
        s = self.settings
        try:
            if outcome.retry or outcome.dead:
                await self.lane.settle(self.name, outcome)
            else:
                self._next = await self.lane.ack_and_claim(
                    self.name, outcome.done, s.worker_batch_size, s.worker_lease_s
                )
        except RedisUnavailable:
            self._stranded = True  # they are in the ledger: requeued, found done, acked

    async def _run_handlers(self, events: Sequence[Event]) -> tuple[list[Event], list[Failure]]:
        ok: list[Event] = []
        failures: list[Failure] = []
        for event in events:
            handlers = self.registry.match(event.type)[0]
            started = time.perf_counter()
            try:
                for fn in handlers:
                    await fn(event)
            except Exception as exc:
                failures.append(self.retry.failure(event, exc))
            else:
                ok.append(event)
            self._observe(event, time.perf_counter() - started)
        return ok, failures

    def _observe(self, event: Event, seconds: float) -> None:
        handlers, transactional = self.registry.match(event.type)
        if not handlers and not transactional:
            self._unhandled(event)
        metrics.PROCESSING_SECONDS.observe(seconds)

    def _log_failure(self, f: Failure) -> None:
        ev = f.event
        if f.dead:
            log.error(
                "event %s (%s) is dead after %d attempts: %s\n%s",
                ev.id,
                ev.type,
                f.attempts,
                f.error,
                f.traceback or "",
            )
            return
        log.warning(
            "handler failed: type=%s id=%s attempt=%d/%d: %s (retry in %.1fs)",
            ev.type,
            ev.id,
            f.attempts,
            self.retry.max_attempts,
            f.error,
            self.retry.backoff_s(f.attempts),
        )

    def _unhandled(self, event: Event) -> None:
        metrics.EVENTS_UNHANDLED.inc()
        if self.registry.first_unhandled(event.type):
            log.warning(
                "no handler matches event type %s (event %s): marked processed, nothing ran; "
                "name the module that handles it in GODEL_HANDLERS",
                event.type,
                event.id,
            )

    def _commit(
        self,
        conn: Any,
        ok: Sequence[Event],
        failures: Sequence[Failure],
        now: float,
        claimed_by: str | None,
    ) -> set[str]:
        """One transaction: mark processed (only what we win), apply transactional
        handlers for exactly those, record failures."""
        won = ledger.mark_processed(conn, [e.id for e in ok], now, claimed_by, self.name)
        # By agent, then ledger order: concurrent workers take the agents' row locks in one
        # order (else PostgreSQL aborts one of them as a deadlock), and each agent still
        # sees its own events in the order they were accepted.
        for event in sorted(ok, key=lambda e: (e.agent_id or "", e.seq or 0)):
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
                failures.append(self.retry.failure(event, exc))
        await self.db.write(ledger.record_failures, failures, now, claimed_by is None)
        return won, failures

    @staticmethod
    def _outcome(claimed: Sequence[str], failures: Sequence[Failure]) -> Outcome:
        failed = {f.event.id for f in failures}
        outcome = Outcome(done=[i for i in claimed if i not in failed])
        for f in failures:
            if f.dead:
                outcome.dead.append((f.event.id, f.event.type))
            else:
                outcome.retry[f.event.id] = f.available_at
        return outcome

    def _account(self, claimed: int, won: set[str], failures: Sequence[Failure]) -> None:
        dead = sum(1 for f in failures if f.dead)
        metrics.EVENTS_PROCESSED.labels("processed").inc(len(won))
        metrics.EVENTS_PROCESSED.labels("retried").inc(len(failures) - dead)
        metrics.EVENTS_PROCESSED.labels("dead").inc(dead)
        metrics.EVENTS_PROCESSED.labels("duplicate").inc(claimed - len(won) - len(failures))
        self.processed += len(won)
