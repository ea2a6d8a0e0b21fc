"""godel.store.counts: the counts /health shows, kept without reading the ledger, equal to the
exact scan (`ledger.count_by_status`) whatever the ledger went through; on SQLite and on
PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select

from godel.event import Event, Status
from godel.store import counts, inserts, ledger
from godel.store.database import Database
from godel.store.ledger import Failure
from godel.store.migrate import upgrade
from godel.store.schema import event_counts, events


def exact_totals(conn: Any) -> dict[str, tuple[int, int]]:
    stmt = select(events.c.status, func.count(), func.sum(events.c.attempts)).group_by(
        events.c.status
    )
    return {str(s): (int(n), int(a)) for s, n, a in conn.execute(stmt).all()}


def owners(conn: Any) -> dict[str, int]:
    rows = conn.execute(select(event_counts.c.owner, event_counts.c.processed)).all()
    return {str(o): int(n) for o, n in rows}


async def insert(db: Database, ids: list[str]) -> None:
    batch = [(Event(id=i, type="t.x", payload_json="{}"), True) for i in ids]
    await inserts.commit_events(db, batch)


async def test_counts_equal_the_exact_scan_through_every_kind_of_change(
    ledger_db: Database,
) -> None:
    db = ledger_db
    assert await db.read(counts.by_status) == {}
    await insert(db, [f"c-{i}" for i in range(10)])
    now = time.time()
    assert await db.read(counts.by_status) == {"queued": 10}
    await db.write(ledger.mark_processed, ["c-0", "c-1"], now, None, "w-a")
    await db.write(ledger.mark_processed, ["c-1", "c-2"], now, None, "w-b")  # c-1: lost
    held = await db.write(ledger.claim_from_ledger, "w-c", 2, now, 30.0)
    await db.write(ledger.mark_processed, [held[0].id], now, "w-c")  # its own name by default
    ev = {i: Event(id=i, type="t.x", payload_json="{}") for i in ("c-5", "c-6")}
    await db.write(
        ledger.record_failures,
        [
            Failure(ev["c-5"], "boom", 2, dead=False, available_at=now),
            Failure(ev["c-6"], "boom", 5, dead=True, available_at=now),
        ],
        now,
        True,
    )
    await db.write(ledger.mark_processed, ["c-5"], now, None, "w-a")  # 2 attempts, then done
    exact = await db.read(ledger.count_by_status)
    assert await db.read(counts.by_status) == exact
    assert exact[Status.PROCESSED] == 5 and exact[Status.DEAD] == 1
    assert await db.read(counts.totals) == await db.read(exact_totals)
    assert await db.read(owners) == {"": 0, "w-a": 3, "w-b": 1, "w-c": 1}


async def test_fold_merges_quiet_owners_into_the_base_row_and_keeps_the_sums(
    ledger_db: Database,
) -> None:
    db = ledger_db
    await insert(db, [f"f-{i}" for i in range(6)])
    old, now = time.time() - 7200, time.time()
    await db.write(ledger.mark_processed, ["f-0", "f-1"], old, None, "gone")
    await db.write(ledger.mark_processed, ["f-2"], now, None, "alive")
    before = await db.read(counts.totals)
    assert await db.write(counts.fold, now - 3600, now) == 1
    assert await db.write(counts.fold, now - 3600, now) == 0
    assert await db.read(owners) == {"": 2, "alive": 1}
    assert await db.read(counts.totals) == before
    await db.write(ledger.mark_processed, ["f-3"], now, None, "gone")  # back after the fold
    assert await db.read(counts.by_status) == await db.read(ledger.count_by_status)


async def test_the_migration_starts_the_base_row_at_the_processed_rows(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        upgrade(db, "0004")
        await insert(db, ["m-0", "m-1", "m-2"])

        def finish_two(conn: Any) -> None:
            conn.execute(
                events.update()
                .where(events.c.id.in_(["m-0", "m-1"]))
                .values(status=Status.PROCESSED, attempts=1)
            )

        await db.write(finish_two)
        upgrade(db)
        assert await db.read(owners) == {"": 2}
        assert await db.read(counts.totals) == {"processed": (2, 2), "queued": (1, 0)}
    finally:
        db.close()
