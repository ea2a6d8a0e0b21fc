"""Recovery: the fallback → recovering → connected half of the Link's state machine.

    probe (PING + test write, jittered backoff, for ever while in fallback)
      → sentinel check (Redis lost its data? reconcile everything pushed)
      → replay the undispatched backlog (Link: recovering)
      → reopen the fast lane (Link: connected) → replay what committed meanwhile

Every exit of that sequence leaves the Link `connected`, or `fallback` with the probe
armed: whatever is raised (the ledger going away mid-replay, an error Redis classification
does not know, a cancelled request) sends the Link back to fallback, and the probe task
re-arms itself when it ends for any reason but shutdown. Only shutdown stops probing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Protocol

from godel.config import Settings
from godel.errors import LedgerUnavailable, RedisUnavailable
from godel.fastlane.link import Link, LinkState
from godel.fastlane.server import read_facts, warn_if_unsafe

log = logging.getLogger("godel.recovery")


class Refill(Protocol):
    """What recovery needs from the ledger side (pipeline.replay.Replayer)."""

    async def check_dataset(self) -> int: ...
    async def replay(self) -> int: ...
    async def undispatched(self) -> int: ...


@dataclass(slots=True)
class LastReplay:
    replayed: int = 0
    duration_s: float = 0.0
    at: float | None = None


class Recovery:
    """Owns the probe task and runs the recovery sequence, one at a time per process."""

    def __init__(self, settings: Settings, *, link: Link, refill: Refill) -> None:
        self.settings = settings
        self.link = link
        self.refill = refill
        self.last = LastReplay()
        self._lock = asyncio.Lock()
        self._probe: asyncio.Task[None] | None = None
        self._delay_s = settings.probe_backoff_min_s
        self._wake = asyncio.Event()
        link.subscribe(self._on_change)
        link.on_failover(self._probe_now)

    @property
    def probing(self) -> bool:
        return self._probe is not None and not self._probe.done()

    async def start(self) -> None:
        """Try Redis once at start; stay in fallback (probing) when it is not usable."""
        self.link.start()
        async with self._lock:
            try:
                await self.link.probe()
            except RedisUnavailable as err:
                self.link.enter_fallback(err.reason, err.detail)
                self._arm()
                return
            await self._recover_locked()

    async def stop(self) -> None:
        self.link.closing()
        if self._probe is not None:
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)

    def _on_change(self, old: LinkState, new: LinkState) -> None:
        if new is LinkState.FALLBACK:
            self._arm()
        elif new is LinkState.CONNECTED:
            self._delay_s = self.settings.probe_backoff_min_s

    def _arm(self) -> None:
        """Make sure a probe runs while the Link is not connected (idempotent)."""
        if self.link.shutting_down or self.probing or self.link.connected:
            return
        self._probe = asyncio.get_running_loop().create_task(
            self._probe_forever(), name="godel-link-probe"
        )
        self._probe.add_done_callback(self._probe_ended)

    def _probe_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the Redis probe failed; restarting it", exc_info=task.exception())
        if self.link.state is not LinkState.CONNECTED:
            self._arm()  # no-op during shutdown

    def _probe_now(self) -> None:
        """A failover was announced: the new master takes writes now, so the probe stops
        backing off (an outage may have grown its delay to GODEL_PROBE_BACKOFF_MAX_S)."""
        self._delay_s = self.settings.probe_backoff_min_s
        self._wake.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _probe_forever(self) -> None:
        while not self.link.shutting_down:
            await self._pause(self._delay_s * random.uniform(0.5, 1.0))
            self._delay_s = min(self._delay_s * 2, self.settings.probe_backoff_max_s)
            async with self._lock:
                if self.link.state is LinkState.CONNECTED:
                    return
                try:
                    await self.link.probe()
                except RedisUnavailable as err:
                    self.link.enter_fallback(err.reason, err.detail)
                    continue
                await self._recover_locked()
                if self.link.connected:
                    return

    async def recover_now(self) -> dict[str, Any]:
        """Operator's 'recover': probe now, and replay whatever the ledger still holds."""
        async with self._lock:
            if not self.link.connected:
                try:
                    await self.link.probe()
                except RedisUnavailable as err:
                    self.link.enter_fallback(err.reason, err.detail)
                    return await self._report(0, 0.0, err.detail)
            started = time.monotonic()
            replayed = await self._recover_locked()
            error = None if self.link.connected else self.link.last_error
            return await self._report(replayed, time.monotonic() - started, error)

    async def _report(self, replayed: int, duration_s: float, error: str | None) -> dict[str, Any]:
        return {
            "state": self.link.state.value,
            "replayed": replayed,
            "remaining": await self.refill.undispatched(),
            "duration_s": round(duration_s, 3),
            "error": error,
        }

    async def _recover_locked(self) -> int:
        """The sequence (the caller holds the lock). Never leaves the Link recovering."""
        self.link.begin_recovery()
        started = time.monotonic()
        replayed = 0
        try:
            await self.refill.check_dataset()
            replayed = await self.refill.replay()
        except BaseException as exc:
            if self.link.state is LinkState.RECOVERING:
                self._back_to_fallback(exc)
            if isinstance(exc, Exception) and not self.link.connected:
                return replayed  # in fallback, probe armed: it tries again
            raise  # cancellation and friends carry on once the state is safe; an operator's
            # recovery of a connected link (nothing to reopen) hears of a ledger failure
        if not self.link.reopen():
            return replayed  # a failover was announced meanwhile: the armed probe goes on
        try:
            replayed += await self.refill.replay()  # what committed during the last batch
        except Exception as exc:  # connected already; the periodic replay picks them up
            log.warning("replay after reopening the fast lane failed: %s", exc)
        duration = time.monotonic() - started
        self.last = LastReplay(replayed, duration, time.time())
        self.link.announce_exit(replayed, duration)
        await self._inspect_server()
        return replayed

    def _back_to_fallback(self, exc: BaseException) -> None:
        reason = exc.reason if isinstance(exc, RedisUnavailable) else "recovery_failed"
        detail = f"recovery stopped: {type(exc).__name__}: {exc}"
        if not isinstance(exc, asyncio.CancelledError):
            log.warning("Redis recovery failed; back to fallback: %s", detail)
        if isinstance(exc, LedgerUnavailable):
            # The driver's message names the database's host, port and user; the Link's
            # last error is served (/health, the stream, the dashboard): the log has it.
            detail = "recovery stopped: LedgerUnavailable: the ledger did not answer"
        self.link.enter_fallback(reason, detail)

    async def _inspect_server(self) -> None:
        try:
            warn_if_unsafe(await read_facts(self.link))
        except RedisUnavailable:
            pass  # the Link is in fallback again; the next recovery inspects
