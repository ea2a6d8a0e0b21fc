"""Names the project promises (DESIGN.md), listed once for the tests that check them."""

from __future__ import annotations

ALERT_NAMES = frozenset(
    {
        "DashRedisConnectionFailed",
        "GodelRedisMemoryHigh",
        "GodelPendingQueueGrowing",
        "GodelDeadLetters",
        "GodelUndispatchedBacklogGrowing",
        "GodelReplayStalled",
        "GodelWorkersMissing",
        "GodelTargetDown",
        "GodelLedgerUnavailable",
    }
)
