"""The composition root: one Godel process's stores, Link, lanes, ingest, workers and
upkeep, built and injected here, started and stopped together (by the API's lifespan,
`godel worker`, or a standalone Producer)."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence

from godel.config import Settings
from godel.errors import ConfigError, LedgerRefused, LedgerUnavailable
from godel.event import Event
from godel.fastlane.cache import Cache
from godel.fastlane.keys import cache_key
from godel.fastlane.link import Link, try_call
from godel.fastlane.queue import FastLane
from godel.handlers import Registry, default_registry
from godel.health import HealthReport, RedisMemory, ReplayReport, link_report
from godel.history import History
from godel.pipeline.deadletters import DeadLetters
from godel.pipeline.ingest import Ingest
from godel.pipeline.maintenance import Maintenance
from godel.pipeline.ratelimit import RateLimiter
from godel.pipeline.recovery import Recovery
from godel.pipeline.replay import Replayer
from godel.pipeline.roster import Roster
from godel.pipeline.worker import Worker, worker_name
from godel.store import counts
from godel.store.database import Database
from godel.store.migrate import upgrade

log = logging.getLogger("godel.runtime")
# Counter rows of workers quiet this long are folded into the base row (store.counts).
COUNTS_QUIET_S = 3600.0
COUNTS_FOLD_EVERY_S = 600.0


class Runtime:
    """Everything one process needs, created in `start` and released in `stop`.

    `registry` defaults to the built-in handlers plus the GODEL_HANDLERS plugins; each
    Runtime has its own."""

    def __init__(
        self,
        settings: Settings,
        redis_url: str | None = None,
        *,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.redis_url = redis_url or settings.effective_redis_url
        self.db = Database(
            settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        self.link = Link(settings, self.redis_url)
        self.lane = FastLane(self.link)
        self.cache = Cache(settings, self.link)
        self.replayer = Replayer(settings, db=self.db, lane=self.lane)
        self.recovery = Recovery(settings, link=self.link, refill=self.replayer)
        self.ingest = Ingest(settings, self.db, self.lane)
        self.limiter = RateLimiter(settings, self.link)  # the API's; a Producer is trusted
        self.dead_letters = DeadLetters(db=self.db, lane=self.lane)
        self.maintenance = Maintenance(
            settings, lane=self.lane, replayer=self.replayer, dead_letters=self.dead_letters
        )
        self.roster = Roster(settings, db=self.db, lane=self.lane)
        # Sampled only where the API runs (it adds the loop): see godel.history.
        self.history = History(db=self.db, lane=self.lane, interval_s=settings.history_interval_s)
        self._registry = registry
        self.workers: list[Worker] = []
        self._worker_tasks: list[asyncio.Task[int]] = []
        self._stop = asyncio.Event()
        self.started_at = time.time()

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = default_registry(self.settings.handler_modules)
        return self._registry

    async def start(
        self,
        workers: int = 0,
        maintenance: bool = True,
        migrate: bool | None = None,
        fast_lane: bool = True,
    ) -> None:
        """Start everything. `fast_lane=False`: the ledger only (no Redis is configured);
        events wait undispatched for a server's replay."""
        # Plugins load (and a bad one fails in one line) before anything else starts.
        for line in self.registry.describe():
            log.info("handler %s", line)
        if migrate if migrate is not None else self.db.is_sqlite:
            await asyncio.to_thread(upgrade, self.db)
        else:
            await self._check_ledger()
        if fast_lane:
            await self.recovery.start()
        else:
            self.link.enter_fallback("ledger_only", "no Redis configured (GODEL_REDIS_URL)")
        if maintenance:
            self.maintenance.start()
            self.maintenance.every("fold-counts", COUNTS_FOLD_EVERY_S, self._fold_counts)
        for index in range(workers):
            self.add_worker(worker_name(index))

    async def _check_ledger(self) -> None:
        """A database that refuses us (the password, pg_hba, sslmode) is a configuration to
        fix: stop now, in one line. One that is down is waited out, answering 503."""
        try:
            await self.db.check()
        except LedgerRefused as err:
            raise ConfigError(f"the ledger refused the connection: {err}") from None
        except LedgerUnavailable as err:
            log.warning("the ledger is unavailable (%s); answering 503 until it is back", err)

    def add_worker(self, name: str, burst: bool = False) -> asyncio.Task[int]:
        worker = Worker(
            name,
            self.settings,
            db=self.db,
            lane=self.lane,
            registry=self.registry,
            after_commit=self._forget_agents,
            roster=self.roster,
        )
        self.workers.append(worker)
        task = asyncio.get_running_loop().create_task(
            worker.run(self._stop, burst=burst), name=f"godel-worker-{name}"
        )
        self._worker_tasks.append(task)
        return task

    async def _forget_agents(self, events: Sequence[Event]) -> None:
        """Processed agent events changed agent rows: their cached copies are stale."""
        keys = {cache_key("agent", e.agent_id) for e in events if e.agent_id}
        if keys:
            await self.cache.delete(*keys)

    def request_stop(self) -> None:
        """Workers stop claiming and finish the batch in hand (SIGTERM)."""
        self._stop.set()

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop claiming, let batches in hand finish for `grace_s`, then cancel."""
        self._stop.set()
        self.link.closing()
        if self._worker_tasks:
            _, late = await asyncio.wait(self._worker_tasks, timeout=grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*self._worker_tasks, return_exceptions=True)
        await self.ingest.close()
        await self.maintenance.stop()
        await self.recovery.stop()
        await self.cache.close()
        await self.link.close()
        await self.db.close_loop_writer()
        await asyncio.to_thread(self.db.close)

    async def _fold_counts(self) -> None:
        now = time.time()
        await self.db.write(counts.fold, now - COUNTS_QUIET_S, now)

    async def health(self) -> HealthReport:
        """What GET /health answers (and the dashboard and `godel status` show)."""
        try:
            by_status = await self.db.read(counts.by_status)
            undispatched: int | None = await self.replayer.undispatched()
            database = "ok"
        except LedgerUnavailable:
            by_status, undispatched, database = {}, None, "unavailable"
        depths = await try_call(self.lane.depths(), None)
        last = self.recovery.last
        return HealthReport(
            status="ok" if database == "ok" else "degraded",
            link=link_report(self.link.describe(), self.redis_url),
            database=database,
            queues=depths.as_dict() if depths is not None else None,
            undispatched=undispatched,
            events=by_status,
            replay=ReplayReport(
                replayed=last.replayed,
                duration_s=last.duration_s,
                at=last.at,
                replayed_total=self.replayer.replayed_total,
                reconciled_total=self.replayer.reconciled_total,
            ),
            workers=[w.name for w in self.workers],
            uptime_s=round(time.time() - self.started_at, 1),
            redis_memory=RedisMemory.from_gauges(),
        )


def settle_heap() -> None:
    """Once a long-running process has started (`godel serve`, `godel worker`): collect,
    then freeze what is left (modules, the app, pools: tens of MB that live as long as the
    process) out of the garbage collector's sight. A full collection walked all of it on
    the event loop: 50-90 ms pauses a few times a minute under load (seen under a storm:
    bench rows 10a-10c), every request in flight waiting. Objects made later are collected
    as usual."""
    gc.collect()
    gc.freeze()
