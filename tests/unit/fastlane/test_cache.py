from __future__ import annotations

import time

from godel.fastlane.cache import MemoryLRU


def test_lru_bounds_entries_and_bytes() -> None:
    lru = MemoryLRU(max_entries=3, max_bytes=10_000)
    for i in range(5):
        lru.set(f"k{i}", b"v", ttl_s=60)
    assert len(lru) == 3 and lru.get("k0") is None and lru.get("k4") == b"v"
    small = MemoryLRU(max_entries=100, max_bytes=1024)
    for i in range(50):
        small.set(f"k{i}", b"x" * 100, ttl_s=60)
    assert small.bytes <= 1024 and len(small) < 50


def test_lru_recency_and_ttl() -> None:
    lru = MemoryLRU(max_entries=2, max_bytes=10_000)
    lru.set("a", b"1", 60)
    lru.set("b", b"2", 60)
    assert lru.get("a") == b"1"  # a is now the most recent
    lru.set("c", b"3", 60)
    assert lru.get("b") is None and lru.get("a") == b"1"
    lru.set("short", b"x", 0.01)
    time.sleep(0.02)
    assert lru.get("short") is None


def test_an_entry_larger_than_the_bound_is_not_kept() -> None:
    lru = MemoryLRU(max_entries=10, max_bytes=1024)
    lru.set("big", b"x" * 2048, 60)
    assert lru.get("big") is None and lru.bytes == 0
