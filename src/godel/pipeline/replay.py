"""Refilling Redis from the ledger: the replay of the undispatched backlog after an outage,
and the reconciler that finds events Redis lost (restart without data, a failover that
dropped writes, a deleted PVC)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from godel import metrics
from godel.config import Settings
from godel.event import Status
from godel.fastlane.queue import FastLane
from godel.store import ledger
from godel.store.database import Database

log = logging.getLogger("godel.recovery")
# Claiming transactions at once per replay batch on PostgreSQL (measured on 2 cores: 1 →
# 52,000 claims/s, 2 → 56,000-61,000, 3 → fewer: they contend on the same index pages).
REPLAY_CLAIMS_IN_FLIGHT = 2


class Replayer:
    """Replay and reconcile for one process; safe to run in several at once (SQL claims).
    Its Redis writes go through `lane.recovering`: the recovery runs them before the fast
    lane reopens."""

    def __init__(self, settings: Settings, *, db: Database, lane: FastLane) -> None:
        self.settings = settings
        self.db = db
        self.lane = lane.recovering
        self.replayed_total = 0
        self.reconciled_total = 0
        # SQLite has one writer: a second claim would only wait for the first.
        self._claimers = 1 if db.is_sqlite else REPLAY_CLAIMS_IN_FLIGHT

    async def undispatched(self) -> int:
        n = await self.db.read(ledger.count_undispatched)
        metrics.FALLBACK_QUEUED.set(n)
        return n

    async def replay(self) -> int:
        """Push the undispatched backlog into Redis in ledger order, batch by batch.

        A batch is claimed (marked dispatched) in SQL first and pushed second; if the push
        fails the batch is marked undispatched again, so nothing is pushed twice on purpose
        and nothing is left behind (a crash in between is the reconciler's job). The next
        batch is claimed while the current one is pushed; pushes stay in order. On
        PostgreSQL a batch is claimed by several transactions at once (SKIP LOCKED keeps
        them apart): the claim's cost is the server's index updates, and PostgreSQL does
        them on as many cores as there are transactions."""
        total = 0
        metrics.REPLAY_IN_PROGRESS.set(1)
        try:
            batch = await self._claim_batch()
            while batch:
                pushing = asyncio.ensure_future(self._push(batch, time.time(), True))
                try:
                    following = await self._claim_batch()
                finally:
                    await asyncio.wait([pushing])
                failed = pushing.exception()
                if failed is not None:
                    if following:
                        await self.db.write(ledger.mark_undispatched, [d.id for d in following])
                    raise failed
                total += len(batch)
                self.replayed_total += len(batch)
                metrics.REPLAYED.inc(len(batch))
                batch = following
            return total
        finally:
            metrics.REPLAY_IN_PROGRESS.set(0)

    async def _claim_batch(self) -> list[ledger.Dispatch]:
        """The next batch, oldest first: `replay_batch_size` rows per claiming transaction."""
        claims = [self._claim_one() for _ in range(self._claimers)]
        if len(claims) == 1:
            return await claims[0]
        done = await asyncio.gather(*claims, return_exceptions=True)
        taken = [d for result in done if isinstance(result, list) for d in result]
        failed = next((r for r in done if isinstance(r, BaseException)), None)
        if failed is not None:
            if taken:  # the other claims committed: give their rows back to the backlog
                await self.db.write(ledger.mark_undispatched, [d.id for d in taken])
            raise failed
        return sorted(taken, key=lambda d: d.seq)

    async def _claim_one(self) -> list[ledger.Dispatch]:
        return await self.db.write(
            ledger.claim_undispatched, self.settings.replay_batch_size, time.time()
        )

    async def _push(
        self, batch: Sequence[ledger.Dispatch], now: float, undo_on_failure: bool
    ) -> None:
        live = [d for d in batch if d.status != Status.DEAD]
        pending = [d.id for d in live if d.available_at <= now]
        delayed = {d.id: d.available_at for d in live if d.available_at > now}
        dead = [(d.id, d.type) for d in batch if d.status == Status.DEAD]
        try:
            await self.lane.schedule(pending, delayed, dead)
        except BaseException:
            if undo_on_failure:
                await asyncio.shield(self.db.write(ledger.mark_undispatched, [d.id for d in batch]))
            raise

    async def reconcile(self, cutoff: float | None = None, limit: int = 500) -> int:
        """Push again stale events that Redis no longer holds. Returns how many."""
        now = time.time()
        if cutoff is None:
            cutoff = now - self.settings.reconcile_deadline_s
        now = max(now, cutoff + 0.001)  # touched rows must fall out of this very query
        pushed = 0
        while True:
            batch = await self.db.write(ledger.claim_stale, limit, now, cutoff)
            if not batch:
                return pushed
            held = await self.lane.present([d.id for d in batch])
            lost = [d for d in batch if d.id not in held]
            if lost:
                await self._push(lost, now, undo_on_failure=False)
                pushed += len(lost)
                self.reconciled_total += len(lost)
                metrics.RECONCILED.inc(len(lost))
                log.warning("Reconciled %d events that Redis had lost", len(lost))
            if len(batch) < limit:
                return pushed

    async def reconcile_all(self) -> int:
        """Redis lost its data: every pushed, unprocessed event is a candidate now."""
        return await self.reconcile(cutoff=time.time())

    async def check_dataset(self) -> int:
        """The sentinel check: when Redis lost its data (the key set once per dataset is
        missing), push every unprocessed event it should hold again. Returns how many."""
        if not await self.lane.mark_dataset():
            return 0
        found = await self.reconcile_all()
        if found:
            log.warning(
                "Redis had lost %d events (sentinel key missing); "
                "pushed them again from the ledger",
                found,
            )
        return found
