"""Fakes for unit tests of the Link's state machine: real implementations of the few
methods the Link and the recovery call, with switches for the outage being simulated."""

from __future__ import annotations

import asyncio
from typing import Any

from redis import exceptions as rex

from godel.config import Settings
from godel.errors import LedgerUnavailable

FAST = Settings(
    probe_backoff_min_s=0.005,
    probe_backoff_max_s=0.02,
    embedded_redis=False,
    redis_url="redis://fake:1/0",
)


class FakePool:
    def __init__(self) -> None:
        self.disconnects = 0

    async def disconnect(self) -> None:
        self.disconnects += 1


class FakeRedis:
    """Answers like a healthy redis-server until `fail_with` is set: then every command
    raises that error (a ConnectionError is a dead server, a ResponseError a refusing one)."""

    def __init__(self) -> None:
        self.fail_with: BaseException | None = None
        self.data: dict[str, Any] = {}
        self.connection_pool = FakePool()
        self.closed = False

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    async def ping(self) -> bool:
        self._check()
        return True

    async def set(self, key: str, value: Any, px: int | None = None, nx: bool = False) -> bool:
        self._check()
        if nx and key in self.data:
            return False
        self.data[key] = value
        return True

    async def get(self, key: str) -> Any:
        self._check()
        return self.data.get(key)

    async def info(self) -> dict[str, Any]:
        self._check()
        return {"used_memory": 1024, "maxmemory": 0, "aof_enabled": 1}

    async def config_get(self, name: str) -> dict[str, str]:
        self._check()
        return {name: "noeviction"}

    async def aclose(self) -> None:
        self.closed = True


def down() -> rex.ConnectionError:
    return rex.ConnectionError("Error 111 connecting to fake:1. Connection refused.")


class Abort(BaseException):
    """Not an Exception and not a cancellation: what `except Exception` lets through."""


class ScriptedRefill:
    """The recovery's ledger side. Each replay takes the next step of `script`: a number of
    events replayed, an exception to raise, or an asyncio.Event to wait for (a long replay);
    once the script is used up, replays find nothing."""

    def __init__(self, *script: int | BaseException | asyncio.Event) -> None:
        self.script = list(script)
        self.replays = 0
        self.started = asyncio.Event()

    async def check_dataset(self) -> int:
        return 0

    async def replay(self) -> int:
        self.replays += 1
        self.started.set()
        step = self.script.pop(0) if self.script else 0
        if isinstance(step, asyncio.Event):
            await step.wait()
            return 0
        if isinstance(step, BaseException):
            raise step
        return step

    async def undispatched(self) -> int:
        return 0


def ledger_down() -> LedgerUnavailable:
    return LedgerUnavailable("connection to server at 127.0.0.1 failed: Connection refused")
