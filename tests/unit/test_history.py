"""godel.history: the bounded rings behind the dashboard's charts, and one sample read from a
real ledger and redis-server."""

from __future__ import annotations

from typing import Any

from godel.history import SERIES, History
from godel.intake import parse_event
from tests.harness import make_settings, started


def ring(keep: int = 4) -> History:
    return History(db=None, lane=None, interval_s=5.0, keep=keep)  # type: ignore[arg-type]


def test_each_series_keeps_the_newest_samples_only() -> None:
    h = ring(keep=3)
    for i in range(5):
        h.add(100.0 + i, {"accepted": i, "dead": None})
    body = h.as_dict()
    assert body["t"] == [102.0, 103.0, 104.0] and len(h) == 3
    assert body["series"]["accepted"] == [2, 3, 4]
    assert body["series"]["dead"] == [None, None, None]
    assert set(body["series"]) == set(SERIES) and body["interval_s"] == 5.0
    assert h.as_dict(since=103.0)["t"] == [104.0]
    assert h.as_dict(since=200.0)["series"]["accepted"] == []


def test_latest_and_the_baseline_of_a_window() -> None:
    h = ring(keep=10)
    assert h.latest() is None and h.baseline(60, now=1000.0) is None
    for t, dead in ((900.0, 0), (950.0, 1), (990.0, 3)):
        h.add(t, {"dead": dead})
    latest: dict[str, Any] | None = h.latest()
    assert latest is not None and (latest["t"], latest["dead"]) == (990.0, 3)
    baseline = h.baseline(60, now=1000.0)  # the oldest sample of the last minute
    assert baseline is not None and (baseline["t"], baseline["dead"]) == (950.0, 1)
    assert h.baseline(5, now=1000.0) is None


async def test_a_sample_reads_the_ledger_and_redis(sqlite_url: str, redis_url: str) -> None:
    async with started(make_settings(sqlite_url, redis_url)) as rt:
        await rt.ingest.submit([parse_event({"type": "h.x"}, 1024) for _ in range(3)])
        await rt.ingest.close()
        await rt.history.sample()
        sample = rt.history.latest()
        assert sample is not None
        assert (sample["accepted"], sample["queued"], sample["processed"]) == (3, 3, 0)
        assert (sample["failed"], sample["dead"], sample["undispatched"]) == (0, 0, 0)
        assert (sample["pending"], sample["delayed"], sample["down"]) == (3, 0, 0)


async def test_a_sample_without_redis_says_what_is_unknown(sqlite_url: str) -> None:
    settings = make_settings(sqlite_url, "redis://127.0.0.1:1/0")
    async with started(settings, fast_lane=False) as rt:
        await rt.ingest.submit([parse_event({"type": "h.x"}, 1024)])
        await rt.ingest.close()
        await rt.history.sample()
        sample = rt.history.latest()
        assert sample is not None
        assert (sample["accepted"], sample["undispatched"], sample["down"]) == (1, 1, 1)
        assert sample["pending"] is None and sample["delayed"] is None
