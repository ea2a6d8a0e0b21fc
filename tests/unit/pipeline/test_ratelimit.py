"""The per-process side of the rate limits: local buckets (Redis away) and leases."""

from __future__ import annotations

from godel.fastlane.ratelimit import Bucket
from godel.pipeline.ratelimit import (
    LEASE_TTL_S,
    Leases,
    LocalBuckets,
    Refusals,
    lease_size,
    refusal,
)


def bucket(cost: int, name: str = "a", rate: float = 10.0, burst: int = 20) -> Bucket:
    return Bucket("agent", name, rate, burst, cost)


def test_local_buckets_refill_at_the_rate_and_refuse_whole() -> None:
    local = LocalBuckets()
    assert local.take([bucket(20)], now=0.0) is None
    short = local.take([bucket(5), bucket(1, "b")], now=0.2)  # a has 2 tokens after 0.2 s
    assert short is not None and short.bucket.name == "a"
    assert short.wait_s == 0.3  # 3 more tokens at 10/s
    assert local.take([bucket(1, "b")], now=0.2) is None  # b was not charged above
    assert local.take([bucket(5)], now=0.5) is None  # 5 tokens by then


def test_local_buckets_are_bounded_and_a_forgotten_one_is_full() -> None:
    local = LocalBuckets(max_buckets=2)
    for name in ("a", "b", "c"):
        assert local.take([bucket(20, name)], now=0.0) is None
    assert local.take([bucket(20, "a")], now=0.0) is None  # "a" was evicted: full again


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    from godel.fastlane.ratelimit import Shortfall

    assert refusal(Shortfall(bucket(1), 0.01)).retry_after_s == 1
    assert refusal(Shortfall(bucket(1), 2.1)).retry_after_s == 3


def test_leases_are_spent_whole_and_lapse() -> None:
    leases = Leases()
    assert not leases.spend([bucket(1)], now=0.0)
    leases.keep([bucket(1), bucket(1, "b")], [3, 0], now=0.0)
    assert leases.spend([bucket(2)], now=0.1)
    assert not leases.spend([bucket(1), bucket(1, "b")], now=0.1)  # b has no lease: nothing
    assert leases.spend([bucket(1)], now=0.1)
    assert not leases.spend([bucket(1)], now=0.1)  # spent
    leases.keep([bucket(1)], [5], now=1.0)
    assert not leases.spend([bucket(1)], now=1.0 + LEASE_TTL_S)  # lapsed


def test_lease_size_is_small_against_burst_and_rate() -> None:
    assert lease_size(Bucket("agent", "a", 1000.0, 5000, 1)) == 50
    assert lease_size(Bucket("agent", "a", 0.01, 20, 1)) == 0  # exact when slow


def test_a_refusal_is_remembered_only_as_far_as_it_proves_one() -> None:
    from godel.fastlane.ratelimit import Shortfall

    refusals = Refusals()
    # Redis refused 5 events for "a" (rate 10/s): 0.3 s to wait, so it had 2 tokens at most.
    refusals.note([bucket(5), bucket(1, "b")], Shortfall(bucket(5), 0.3, (0.3, 0.0)), 0.0)
    short = refusals.check([bucket(5)], now=0.1)  # at most 3 tokens by now
    assert short is not None and short.bucket.name == "a"
    assert abs(short.wait_s - 0.2) < 0.01
    assert refusals.check([bucket(1, "b")], now=0.1) is None  # b had enough: not noted
    assert refusals.check([bucket(3)], now=0.1) is None  # 3 may be there: Redis decides
    assert refusals.check([bucket(5)], now=0.31) is None  # refilled enough: Redis decides
    assert refusals.check([bucket(5)], now=5.0) is None  # full: forgotten
    assert not refusals._short


def test_remembered_refusals_are_bounded() -> None:
    from godel.fastlane.ratelimit import Shortfall

    refusals = Refusals(max_buckets=2)
    for name in ("a", "b", "c"):
        refusals.note([bucket(5, name)], Shortfall(bucket(5, name), 1.0, (1.0,)), 0.0)
    assert refusals.check([bucket(5, "a")], now=0.0) is None  # forgotten first
    assert refusals.check([bucket(5, "c")], now=0.0) is not None
