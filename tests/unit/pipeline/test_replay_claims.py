"""pipeline.replay's claims on PostgreSQL: each batch is claimed by two transactions at once;
when one of them fails, what the other took goes back to the backlog, so nothing is marked
dispatched without being pushed. A real PostgreSQL ledger; the failure is injected into one
claim through the Database the Replayer is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from godel.errors import LedgerUnavailable
from godel.fastlane.link import Link
from godel.fastlane.queue import FastLane
from godel.intake import parse_event
from godel.pipeline import replay
from godel.pipeline.replay import Replayer
from godel.store import inserts, ledger
from godel.store.database import Database
from godel.store.migrate import upgrade
from tests.harness import make_settings

T = TypeVar("T")
NO_REDIS = "redis://127.0.0.1:1/0"  # never dialled: these tests stop at the claims


class SecondClaimFails(Database):
    """A Database whose second replay claim raises, after the first has committed."""

    claims = 0

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        if fn is ledger.claim_undispatched:
            self.claims += 1
            if self.claims == 2:
                raise LedgerUnavailable("injected: the second claim lost its connection")
        return await super().write(fn, *args)


@pytest.mark.postgres
async def test_a_failed_claim_gives_the_other_claims_rows_back(pg_url: str) -> None:
    db = SecondClaimFails(pg_url)
    try:
        upgrade(db)
        evs = [parse_event({"type": "t.x"}, 1024) for _ in range(10)]
        await inserts.commit_events(db, [(e, False) for e in evs])
        settings = make_settings(pg_url, NO_REDIS, replay_batch_size=3)
        replayer = Replayer(settings, db=db, lane=FastLane(Link(settings, NO_REDIS)))
        assert replay.REPLAY_CLAIMS_IN_FLIGHT == 2
        with pytest.raises(LedgerUnavailable, match="injected"):
            await replayer.replay()
        assert db.claims == 2
        assert await db.read(ledger.count_undispatched) == 10
        assert replayer.replayed_total == 0
    finally:
        db.close()
