"""Which lane took each event, and the workers' roster.

`events.lane` is set when a worker settles an attempt: `redis` (claimed from the fast lane)
or `ledger` (claimed straight from the ledger, in fallback). `dispatched` only says whether
the id was pushed onto Redis, and marking an event processed sets it; it cannot tell the two
apart.

`workers` is one row per worker loop (`<host>-<pid>-<index>`), written at start, every few
seconds while it runs and once when it stops: who is alive, since when, in every mode (the
Redis lease in godel:workers vanishes with Redis).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("lane", sa.String(8), nullable=True))
    op.create_table(
        "workers",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float, nullable=True),
        sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("workers")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("lane")
