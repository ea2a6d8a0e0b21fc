"""One Godel process: the stores, the Link, ingest, workers and upkeep, started and
stopped together (by the API's lifespan, `godel worker`, or a standalone Producer)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from godel import ledger, queue
from godel.cache import Cache
from godel.config import Settings
from godel.db import Database
from godel.errors import LedgerUnavailable, RedisUnavailable
from godel.handlers import install_builtins, load_plugins, registry
from godel.link import Link
from godel.maintenance import Maintenance
from godel.migrate import upgrade
from godel.producer import Ingest
from godel.recovery import Recovery
from godel.worker import Worker, worker_name

log = logging.getLogger("godel.runtime")


class Runtime:
    """Everything one process needs, created in `start` and released in `stop`."""

    def __init__(self, settings: Settings, redis_url: str | None = None) -> None:
        self.settings = settings
        self.redis_url = redis_url or settings.effective_redis_url
        self.db = Database(
            settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
        )
        self.link = Link(settings, self.redis_url)
        self.recovery = Recovery(settings, self.db, self.link)
        self.cache = Cache(settings, self.link)
        self.ingest = Ingest(settings, self.db, self.link)
        self.maintenance = Maintenance(settings, self.db, self.link, self.recovery)
        self.registry = registry
        self.workers: list[Worker] = []
        self._worker_tasks: list[asyncio.Task[int]] = []
        self._stop = asyncio.Event()
        self.started_at = time.time()

    async def start(
        self, workers: int = 0, maintenance: bool = True, migrate: bool | None = None
    ) -> None:
        if migrate if migrate is not None else self.db.is_sqlite:
            await asyncio.to_thread(upgrade, self.db)
        install_builtins(self.registry)
        load_plugins(self.settings.handler_modules)
        await self.link.start()
        if maintenance:
            self.maintenance.start()
        for index in range(workers):
            self.add_worker(worker_name(index))

    def add_worker(self, name: str, burst: bool = False) -> asyncio.Task[int]:
        worker = Worker(name, self.settings, self.db, self.link, self.registry, self.cache)
        self.workers.append(worker)
        task = asyncio.get_running_loop().create_task(
            worker.run(self._stop, burst=burst), name=f"godel-worker-{name}"
        )
        self._worker_tasks.append(task)
        return task

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
        await self.cache.close()
        await self.link.close()
        await asyncio.to_thread(self.db.close)

    async def health(self) -> dict[str, Any]:
        """The JSON behind GET /health and `godel status`."""
        link = self.link
        try:
            counts = await self.db.read(ledger.count_by_status)
            undispatched = await self.recovery.undispatched()
            database = "ok"
        except LedgerUnavailable as err:
            counts, undispatched, database = {}, None, f"unavailable: {err}"
        depths: dict[str, object] | None = None
        if link.connected:
            try:
                depths = await link.call(queue.depths)
            except RedisUnavailable:
                depths = None
        return {
            "status": "ok" if database == "ok" else "degraded",
            "link": {
                "state": link.state.value,
                "since": link.since,
                "reason": link.reason,
                "last_error": link.last_error,
                "redis_url": _redacted(self.redis_url),
            },
            "state": link.state.value,
            "database": database,
            "queues": depths,
            "undispatched": undispatched,
            "events": counts,
            "replay": {
                **link.last_replay,
                "replayed_total": self.recovery.replayed_total,
                "reconciled_total": self.recovery.reconciled_total,
            },
            "workers": [w.name for w in self.workers],
            "uptime_s": round(time.time() - self.started_at, 1),
        }


def _redacted(url: str) -> str:
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
