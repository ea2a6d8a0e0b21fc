"""Periodic upkeep every Godel process runs: promote due retries, reap dead workers,
replay stragglers, reconcile lost events, and refresh the gauges. Each step is safe to
run in several processes at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from godel import metrics
from godel.config import Settings
from godel.errors import GodelError
from godel.fastlane.link import try_call
from godel.fastlane.queue import FastLane, QueueDepths
from godel.fastlane.server import read_facts
from godel.pipeline.deadletters import DeadLetters
from godel.pipeline.replay import Replayer

log = logging.getLogger("godel.maintenance")
DEAD_SYNC_PERIOD_S = 30.0


class Maintenance:
    """A few loops, each with its own period, owned and cancelled together."""

    def __init__(
        self,
        settings: Settings,
        *,
        lane: FastLane,
        replayer: Replayer,
        dead_letters: DeadLetters,
    ) -> None:
        self.settings = settings
        self.lane = lane
        self.link = lane.link
        self.replayer = replayer
        self.dead_letters = dead_letters
        self.depths: QueueDepths | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._dead_synced_at = 0.0

    def start(self) -> None:
        s = self.settings
        loops: list[tuple[str, float, Callable[[], Awaitable[None]]]] = [
            ("promote", 0.25, self.promote),
            ("reap", max(s.worker_lease_s / 3, 0.5), self.reap),
            ("reconcile", s.reconcile_interval_s, self.reconcile),
            ("gauges", s.metrics_interval_s, self.refresh_gauges),
            ("redis-info", s.redis_info_interval_s, self.redis_info),
        ]
        for name, period, step in loops:
            self.every(name, period, step)

    def every(self, name: str, period_s: float, step: Callable[[], Awaitable[None]]) -> None:
        """Run `step` every `period_s` from now on, owned (and stopped) with the others:
        the API adds its history sampler this way."""
        task = asyncio.get_running_loop().create_task(
            self._every(period_s, step), name=f"godel-{name}"
        )
        self._tasks.append(task)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _every(self, period_s: float, step: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.current_task()
        while True:
            try:
                await step()
            except (GodelError, OSError) as err:
                log.debug("maintenance step %s: %s", step.__name__, err)
            # redis-py may swallow a cancellation that lands inside a command; check here
            # or shutdown would wait on this loop forever.
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            await asyncio.sleep(period_s)

    # Steps that need Redis raise FastLaneClosed at once while it is away; `_every` carries on.

    async def promote(self) -> None:
        await self.lane.promote_due()

    async def reap(self) -> None:
        moved = await self.lane.reap()
        if moved:
            log.warning("Reaped %d events from workers whose lease expired", moved)

    async def reconcile(self) -> None:
        if not self.link.connected:
            return
        if self.link.since > self._dead_synced_at or (
            time.time() - self._dead_synced_at > DEAD_SYNC_PERIOD_S
        ):
            # Connected again, the dead lists may have lost entries (Redis restarted empty)
            # or kept ones replayed or purged during the outage; the sync leaves the newest
            # rows alone, so it also runs now and then to catch those.
            self._dead_synced_at = time.time()
            await self.dead_letters.sync()
        await self.replayer.check_dataset()
        await self.replayer.replay()
        await self.replayer.reconcile()

    async def refresh_gauges(self) -> None:
        await self.replayer.undispatched()
        depths = await try_call(self.lane.depths(), None)
        if depths is None:
            return
        self.depths = depths
        for name in ("pending", "processing", "delayed"):
            metrics.QUEUE_DEPTH.labels(name).set(getattr(depths, name))
        metrics.QUEUE_DEPTH.labels("dead").set(sum(depths.dead.values()))
        metrics.DEAD_LETTERS.clear()  # a drained list has no key: its type must go too
        for event_type, n in depths.dead.items():
            metrics.DEAD_LETTERS.labels(event_type).set(n)

    async def redis_info(self) -> None:
        await read_facts(self.link)
