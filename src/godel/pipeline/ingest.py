"""Ingest: the group commit into the ledger and the pusher onto the fast lane, shared by
the HTTP API and the Python Producer.

`Ingest.submit` acknowledges only what the ledger has committed. Concurrent calls are
group-committed: while one transaction is in flight, new events gather, and the next
transaction takes them all, followed by one LPUSH for the whole group.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

from godel import metrics
from godel.config import Settings
from godel.errors import IdConflict, LedgerUnavailable, RedisUnavailable
from godel.event import Event
from godel.fastlane.queue import FastLane
from godel.store import inserts, ledger
from godel.store.database import LOOP_WRITERS, Database

log = logging.getLogger("godel.ingest")
# At most one LPUSH per this long while events keep committing (see Ingest._push_loop).
PUSH_GAP_S = 0.001
PG_COMMITS_IN_FLIGHT = LOOP_WRITERS  # group commits at once on PostgreSQL


@functools.cache
def _accepted(mode: str) -> Any:
    return metrics.EVENTS_ACCEPTED.labels(mode)  # looked up once per mode, not per commit


@dataclass(slots=True)
class Ack:
    """What a client gets back: ids in request order, the sendings that stored nothing new
    (an id already known, or repeated in the request), the mode."""

    ids: list[str]
    duplicates: list[str]
    mode: str

    @property
    def accepted(self) -> int:
        """Distinct new events this request stored."""
        return len(self.ids) - len(self.duplicates)


@dataclass(slots=True)
class _Waiting:
    events: list[Event]
    future: asyncio.Future[Ack]


class Ingest:
    """Group-commits events into the ledger, then pushes them onto the fast lane.

    The acknowledgement waits for the commit, not for Redis: a separate pusher sends the
    ids of each committed group in one LPUSH while the next group commits. A push that
    fails marks its events undispatched (the replay sends them); a crash between commit
    and push leaves them to the reconciler."""

    def __init__(self, settings: Settings, db: Database, lane: FastLane) -> None:
        self.settings = settings
        self.db = db
        self.lane = lane
        self._waiting: list[_Waiting] = []
        self._flushers: set[asyncio.Task[None]] = set()
        # SQLite has one writer; PostgreSQL commits several transactions at once, and a
        # durable commit waits for its WAL flush: while one group waits, the next commits.
        self._max_flushers = 1 if db.is_sqlite else PG_COMMITS_IN_FLIGHT
        self._to_push: list[str] = []
        self._pusher: asyncio.Task[None] | None = None
        self._closing = False

    async def submit(self, events: list[Event]) -> Ack:
        """Record `events` durably; answers once their group has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Ack] = loop.create_future()
        self._waiting.append(_Waiting(events, future))
        # A flusher that found nothing left is done before its done-callback runs: count
        # the running ones, or an event submitted in between would wait for ever.
        self._flushers = {t for t in self._flushers if not t.done()}
        if len(self._flushers) < self._max_flushers:
            self._flushers.add(loop.create_task(self._flush_loop(), name="godel-ingest-commit"))
        # A caller cancelled meanwhile cancels only its own future: the group commits anyway.
        return await future

    async def close(self) -> None:
        self._closing = True
        for task in (*self._flushers, self._pusher):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        if self._to_push:  # committed after the pusher's last round
            await self._push_loop()

    def _take(self) -> list[_Waiting]:
        taken: list[_Waiting] = []
        rows = 0
        while self._waiting and (
            not taken or rows + len(self._waiting[0].events) <= self.settings.ingest_commit_max_rows
        ):
            item = self._waiting.pop(0)
            rows += len(item.events)
            taken.append(item)
        return taken

    async def _flush_loop(self) -> None:
        while self._waiting:
            group = self._take()
            try:
                await self._flush(group)
            except Exception as exc:  # resolve every waiter; the error is theirs to answer
                for item in group:
                    if not item.future.done():
                        item.future.set_exception(exc)

    async def _flush(self, group: list[_Waiting]) -> None:
        dispatched = self.lane.link.connected
        rows = [(ev, dispatched) for item in group for ev in item.events]
        try:
            inserted = await inserts.commit_events(self.db, rows)
        except IdConflict as exc:
            self._refuse_conflicts(group, exc)
            return
        metrics.LEDGER_COMMIT_ROWS.observe(len(rows))
        new_ids = [ev.id for ev, _ in rows if ev.id in inserted]
        mode = "redis" if dispatched else "fallback"
        if dispatched and new_ids:
            self._to_push.extend(dict.fromkeys(new_ids))
            if self._pusher is None or self._pusher.done():
                self._pusher = asyncio.get_running_loop().create_task(
                    self._push_loop(), name="godel-ingest-push"
                )
        _accepted(mode).inc(len(inserted))
        fresh = set(inserted)  # each new id is credited once, to its first sender
        for item in group:
            ids = [ev.id for ev in item.events]
            duplicates = []
            for i in ids:
                if i in fresh:
                    fresh.discard(i)
                else:
                    duplicates.append(i)
            if not item.future.done():
                item.future.set_result(Ack(ids=ids, duplicates=duplicates, mode=mode))

    def _refuse_conflicts(self, group: list[_Waiting], exc: IdConflict) -> None:
        """The group was rolled back: its requests that reuse an id for a different event
        get the 409, the others go first into the next group commit."""
        bad = {id(ev) for ev in exc.events}
        retry = []
        for item in group:
            mine = [ev for ev in item.events if id(ev) in bad]
            if mine:
                if not item.future.done():
                    item.future.set_exception(IdConflict(mine))
            else:
                retry.append(item)
        self._waiting[:0] = retry

    async def _push_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._to_push:
            ids, self._to_push = self._to_push, []
            started = loop.time()
            await self._push(ids)
            # Pushes back to back (a fast caller, one event per commit): wait out the rest
            # of PUSH_GAP_S, and the next LPUSH takes all that committed meanwhile; one
            # push per event would cost more than the commit (and wake the workers as often).
            gap = PUSH_GAP_S - (loop.time() - started)
            if self._to_push and gap > 0 and not self._closing:
                await asyncio.sleep(gap)

    async def _push(self, ids: list[str]) -> None:
        try:
            await self.lane.push(ids)
            return
        except RedisUnavailable:
            pass
        except Exception:  # not an outage we know; the events still must not be stranded
            log.exception("pushing %d events failed; leaving them to the replay", len(ids))
        try:
            await self.db.write(ledger.mark_undispatched, ids)
        except LedgerUnavailable as err:
            # Committed but flagged as pushed: the reconciler finds them after its deadline.
            log.error("could not flag %d events undispatched: %s", len(ids), err)
