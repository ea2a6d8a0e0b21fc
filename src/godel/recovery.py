"""Refilling Redis from the ledger: the replay after an outage and the reconciler that
finds events Redis lost (restart without data, failover that dropped writes, deleted PVC)."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence

from godel import ledger, metrics, queue
from godel.config import Settings
from godel.db import Database
from godel.events import Status
from godel.link import Link

log = logging.getLogger("godel.recovery")


class Recovery:
    """Replay and reconcile for one process; safe to run in several at once (SQL claims)."""

    def __init__(self, settings: Settings, db: Database, link: Link) -> None:
        self.settings = settings
        self.db = db
        self.link = link
        self.replayed_total = 0
        self.reconciled_total = 0
        link.replay = self.replay
        link.remaining = self.undispatched
        link.on_data_loss = self.reconcile_all

    async def undispatched(self) -> int:
        n = await self.db.read(ledger.count_undispatched)
        metrics.FALLBACK_QUEUED.set(n)
        return n

    async def replay(self) -> int:
        """Push the undispatched backlog into Redis in ledger order, batch by batch.

        A batch is claimed (marked dispatched) in SQL first and pushed second; if the push
        fails the batch is marked undispatched again, so nothing is pushed twice on purpose
        and nothing is left behind (a crash in between is the reconciler's job). The next
        batch is claimed while the current one is pushed; pushes stay in order."""
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
                if pushing.exception() is not None:
                    if following:
                        await self.db.write(ledger.mark_undispatched, [d.id for d in following])
                    raise pushing.exception()  # type: ignore[misc]
                total += len(batch)
                self.replayed_total += len(batch)
                metrics.REPLAYED.inc(len(batch))
                batch = following
            return total
        finally:
            metrics.REPLAY_IN_PROGRESS.set(0)

    async def _claim_batch(self) -> list[ledger.Dispatch]:
        return await self.db.write(
            ledger.claim_undispatched, self.settings.replay_batch_size, time.time()
        )

    async def _push(
        self, batch: Sequence[ledger.Dispatch], now: float, undo_on_failure: bool
    ) -> None:
        pending = [d.id for d in batch if d.status != Status.DEAD and d.available_at <= now]
        delayed = {
            d.id: d.available_at for d in batch if d.status != Status.DEAD and d.available_at > now
        }
        dead = [(d.id, d.type) for d in batch if d.status == Status.DEAD]
        try:
            await self.link.call_any_state(lambda r: queue.schedule(r, pending, delayed, dead))
        except Exception:
            if undo_on_failure:
                await self.db.write(ledger.mark_undispatched, [d.id for d in batch])
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
            ids = [d.id for d in batch]
            held = await self.link.call_any_state(functools.partial(queue.present, ids=ids))
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
