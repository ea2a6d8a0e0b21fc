"""Processed events counted as they are marked, so /health and the dashboard count the ledger
without reading it whole (godel.store.counts).

One row per worker that marks events processed (`owner`), plus the base row (owner "") that
quiet owners are folded into; this migration starts the base row at the ledger's processed
rows. Every instance of the fleet must run a version that keeps the counters (this one or
later) from here on: one that marks events without counting them would leave the counts
short (`ledger.count_by_status` is always exact).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_counts",
        sa.Column("owner", sa.String(128), primary_key=True),
        sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("attempts", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.execute(
        sa.text(
            "INSERT INTO event_counts (owner, processed, attempts, updated_at) "
            "SELECT '', count(*), coalesce(sum(attempts), 0), :now FROM events "
            "WHERE status = 'processed'"
        ).bindparams(now=time.time())
    )


def downgrade() -> None:
    op.drop_table("event_counts")
