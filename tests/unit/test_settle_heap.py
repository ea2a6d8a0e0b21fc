"""runtime.settle_heap: the start-up heap leaves the collector's sight, what comes later is
still collected. Run in a child interpreter: freezing is for a whole process."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc, weakref
from godel.runtime import settle_heap

class Node:
    pass

settle_heap()
frozen = gc.get_freeze_count()
assert frozen > 10_000, frozen  # the imported modules, at least
a, b = Node(), Node()
a.other, b.other = b, a  # a cycle made after the freeze
gone = weakref.ref(a)
del a, b
gc.collect()
assert gone() is None, "a cycle made after settle_heap was not collected"
print(frozen)
"""


def test_settle_heap_freezes_start_up_and_still_collects_later_cycles() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10_000
