"""Key names: the contracts in standalone and Sentinel mode, one hash slot in cluster mode."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from godel.fastlane import keys
from godel.fastlane.keys import Keys


def test_standalone_names_are_the_contracts() -> None:
    k = Keys.for_cluster(False)
    assert k.pending == "godel:queue:pending"
    assert k.processing("w-1") == "godel:queue:processing:w-1"
    assert k.delayed == "godel:queue:delayed"
    assert k.dead("billing.charge") == "godel:queue:dead:billing.charge"
    assert k.workers == "godel:workers"
    assert k(keys.cache_key("agent", "a-1")) == "godel:cache:agent:a-1"
    assert (k.sentinel, k.probe) == ("godel:link:sentinel", "godel:link:probe")


def test_cluster_names_wrap_the_root_in_one_hash_tag() -> None:
    k = Keys.for_cluster(True)
    assert k.pending == "{godel}:queue:pending"
    assert k.processing("w-1") == "{godel}:queue:processing:w-1"
    assert k.dead("x") == "{godel}:queue:dead:x"
    assert k(keys.cache_key("agent", "a-1")) == "{godel}:cache:agent:a-1"
    names = [
        k.pending,
        k.processing("w"),
        k.processing_prefix + "built-in-lua",  # REAP builds these from ARGV
        k.delayed,
        k.dead("t"),
        k.workers,
        k.sentinel,
        k.probe,
        k(keys.cache_key("agent", "a")),
        k(keys.ratelimit_key("agent", "a")),
    ]
    assert {key_slot(n.encode()) for n in names} == {11626}


def test_only_godel_names_are_mapped() -> None:
    with pytest.raises(ValueError, match="not a Godel key"):
        Keys.for_cluster(True)("other:key")
