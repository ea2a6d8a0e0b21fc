"""The Link's own transitions, driven by a fake client injected through its constructor."""

from __future__ import annotations

import asyncio
import logging

import pytest
from redis import exceptions as rex

from godel.errors import FastLaneClosed, RedisConnectionLost, RedisRefusingWrites, RedisTimeout
from godel.fastlane.link import Link, LinkState, try_call
from godel.fastlane.topology import FailoverWatch
from tests.unit.fastlane.fakes import FAST, FakeRedis, down


def make_link() -> tuple[Link, FakeRedis, list[tuple[LinkState, LinkState]]]:
    fake = FakeRedis()
    link = Link(FAST, "redis://fake:1/0", client=fake)  # type: ignore[arg-type]
    changes: list[tuple[LinkState, LinkState]] = []
    link.subscribe(lambda old, new: changes.append((old, new)))
    return link, fake, changes


async def connected_link() -> tuple[Link, FakeRedis, list[tuple[LinkState, LinkState]]]:
    link, fake, changes = make_link()
    link.begin_recovery()
    link.reopen()
    changes.clear()
    return link, fake, changes


async def test_a_new_link_is_in_fallback_until_recovered() -> None:
    link, _, changes = make_link()
    assert link.state is LinkState.FALLBACK and link.reason == "not started"
    with pytest.raises(FastLaneClosed):
        await link.call(lambda r: r.ping())
    link.begin_recovery()
    link.reopen()
    assert link.connected and link.reason is None
    assert changes == [
        (LinkState.FALLBACK, LinkState.RECOVERING),
        (LinkState.RECOVERING, LinkState.CONNECTED),
    ]


async def test_an_outage_error_enters_fallback_once_and_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="godel")
    link, fake, changes = await connected_link()
    fake.fail_with = down()
    with pytest.raises(RedisConnectionLost) as caught:
        await link.call(lambda r: r.ping())
    assert caught.value.reason == "connection"
    assert link.state is LinkState.FALLBACK and link.reason == "connection"
    assert changes == [(LinkState.CONNECTED, LinkState.FALLBACK)]
    # Further calls do not even reach the client, and log nothing more.
    with pytest.raises(FastLaneClosed):
        await link.call(lambda r: r.ping())
    assert caplog.text.count("Entering fallback mode") == 1


async def test_refusing_writes_is_an_outage_of_its_own_kind() -> None:
    link, fake, _ = await connected_link()
    fake.fail_with = rex.OutOfMemoryError("command not allowed when used memory > 'maxmemory'")
    with pytest.raises(RedisRefusingWrites):
        await link.call(lambda r: r.set("k", "v"))
    assert link.state is LinkState.FALLBACK and link.reason == "oom"


async def test_an_unclassified_error_while_connected_is_raised_as_is() -> None:
    link, fake, changes = await connected_link()
    fake.fail_with = rex.ResponseError("WRONGTYPE Operation against a key")
    with pytest.raises(rex.ResponseError):
        await link.call(lambda r: r.get("k"))
    assert link.connected and not changes  # a bug in Godel, not an outage


async def test_try_call_answers_the_default_during_an_outage() -> None:
    link, fake, _ = await connected_link()
    assert await try_call(link.call(lambda r: r.set("k", "v")), False) is True
    fake.fail_with = down()
    assert await try_call(link.call(lambda r: r.get("k")), "default") == "default"
    assert await try_call(link.call(lambda r: r.get("k")), "again") == "again"  # closed lane


async def test_the_probe_needs_a_write_not_just_ping() -> None:
    link, fake, _ = make_link()
    await link.probe()
    assert "godel:link:probe" in fake.data
    assert fake.connection_pool.disconnects == 1  # stale pooled sockets are dropped first
    fake.fail_with = rex.ResponseError("MISCONF Redis is configured to save RDB snapshots")
    with pytest.raises(RedisRefusingWrites):
        await link.probe()


async def test_shutdown_errors_are_not_outages() -> None:
    link, fake, changes = await connected_link()
    link.closing()
    fake.fail_with = down()
    with pytest.raises(RedisConnectionLost, match="shutting down"):
        await link.call(lambda r: r.ping())
    assert link.connected and not changes


async def test_unsubscribe_stops_notifications() -> None:
    link, _, _ = make_link()
    seen: list[LinkState] = []
    unsubscribe = link.subscribe(lambda old, new: seen.append(new))
    before = link.listener_count
    unsubscribe()
    assert link.listener_count == before - 1
    link.begin_recovery()
    assert seen == []


class _PubSub:
    """A Sentinel's pub/sub connection: hands out the messages of its feed, then idles."""

    def __init__(self, feed: list[str]) -> None:
        self.feed = feed
        self.channels: list[str] = []

    async def __aenter__(self) -> _PubSub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def subscribe(self, channel: str) -> None:
        self.channels.append(channel)

    async def get_message(
        self, ignore_subscribe_messages: bool, timeout: float
    ) -> dict[str, str] | None:
        if self.feed:
            return {"type": "message", "data": self.feed.pop(0)}
        await asyncio.sleep(timeout)
        return None


class _SentinelClient:
    def __init__(self, feed: list[str]) -> None:
        self.pubsub_ = _PubSub(feed)

    def pubsub(self) -> _PubSub:
        return self.pubsub_


class _Sentinels:
    def __init__(self, *feeds: list[str]) -> None:
        self.sentinels = [_SentinelClient(feed) for feed in feeds]


async def test_each_failover_is_reported_once_whichever_sentinels_announce_it() -> None:
    switch = "mymaster 10.0.0.1 6379 10.0.0.2 6379"
    back = "mymaster 10.0.0.2 6379 10.0.0.1 6379"
    other = "othermaster 10.0.0.5 6379 10.0.0.6 6379"
    sentinels = _Sentinels([switch], [switch, other], [switch, back])
    seen: list[str] = []
    watch = FailoverWatch(sentinels, "mymaster", seen.append)  # type: ignore[arg-type]
    watch.start()
    for _ in range(100):
        if len(seen) >= 2:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await watch.stop()
    assert seen == [
        "Sentinel +switch-master: 10.0.0.1:6379 -> 10.0.0.2:6379",
        "Sentinel +switch-master: 10.0.0.2:6379 -> 10.0.0.1:6379",
    ]
    assert all(c.pubsub_.channels == ["+switch-master"] for c in sentinels.sentinels)


async def test_a_failover_closes_the_lane_and_the_next_probe_drops_the_pools() -> None:
    link, fake, _ = await connected_link()
    link.enter_fallback("failover", "Sentinel +switch-master: a:1 -> b:2")
    assert link.state is LinkState.FALLBACK and link.reason == "failover"
    assert link.reopen() is False  # a recovery that began before the failover cannot reopen
    await link.probe()
    assert fake.connection_pool.disconnects == 1
    link.begin_recovery()
    assert link.reopen() is True and link.connected


class _CountingRedis(FakeRedis):
    """A fake whose PINGs are counted, and can be made slow."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__()
        self.pings = 0
        self.delay_s = delay_s

    async def ping(self) -> bool:
        self.pings += 1
        await asyncio.sleep(self.delay_s)
        return await super().ping()


QUICK_CONFIRM = FAST.model_copy(
    update={"redis_confirm_timeout_s": 0.05, "redis_connect_timeout_s": 0.01}
)


def slow_link(confirm: FakeRedis) -> tuple[Link, FakeRedis, list[tuple[LinkState, LinkState]]]:
    fake = FakeRedis()
    link = Link(QUICK_CONFIRM, "redis://fake:1/0", client=fake, confirm_client=confirm)  # type: ignore[arg-type]
    link.begin_recovery()
    link.reopen()
    changes: list[tuple[LinkState, LinkState]] = []
    link.subscribe(lambda old, new: changes.append((old, new)))
    return link, fake, changes


async def test_a_timeout_from_a_redis_that_still_answers_is_slow_not_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="godel")
    confirm = _CountingRedis()
    link, fake, changes = slow_link(confirm)
    fake.fail_with = rex.TimeoutError("Timeout reading from socket")
    with pytest.raises(RedisTimeout):
        await link.call(lambda r: r.get("k"))
    assert link.connected and not changes and confirm.pings == 1
    assert "Entering fallback mode" not in caplog.text
    assert "slow to answer" in caplog.text
    fake.fail_with = None
    assert await link.call(lambda r: r.set("k", "v")) is True  # the lane stayed open


async def test_a_timeout_confirmed_by_a_silent_ping_is_an_outage() -> None:
    confirm = _CountingRedis()
    confirm.fail_with = rex.TimeoutError("Timeout reading from socket")
    link, fake, changes = slow_link(confirm)
    fake.fail_with = rex.TimeoutError("Timeout reading from socket")
    with pytest.raises(RedisTimeout):
        await link.call(lambda r: r.get("k"))
    assert link.state is LinkState.FALLBACK and link.reason == "timeout"
    assert changes == [(LinkState.CONNECTED, LinkState.FALLBACK)]


async def test_a_ping_slower_than_the_confirm_timeout_is_an_outage() -> None:
    confirm = _CountingRedis(delay_s=0.1)
    link, fake, _ = slow_link(confirm)
    fake.fail_with = rex.TimeoutError("Timeout reading from socket")
    with pytest.raises(RedisTimeout):
        await link.call(lambda r: r.get("k"))
    assert link.state is LinkState.FALLBACK


async def test_timeouts_that_come_together_share_one_confirmation() -> None:
    confirm = _CountingRedis(delay_s=0.01)
    link, fake, changes = slow_link(confirm)
    fake.fail_with = rex.TimeoutError("Timeout reading from socket")
    results = await asyncio.gather(
        *(link.call(lambda r: r.get("k")) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(r, RedisTimeout) for r in results)
    assert confirm.pings == 1 and link.connected and not changes
