"""The events ledger and the agents table.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN = "status != 'processed'"


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(128), nullable=False, unique=True),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("agent_id", sa.String(128)),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("dispatched", sa.Boolean, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("available_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.String(128)),
        sa.Column("claimed_until", sa.Float),
        sa.Column("processed_at", sa.Float),
    )
    op.create_index(
        "ix_events_undispatched",
        "events",
        ["seq"],
        sqlite_where=sa.text("dispatched = 0"),
        postgresql_where=sa.text("dispatched = false"),
    )
    op.create_index(
        "ix_events_open",
        "events",
        ["seq"],
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )
    op.create_index("ix_events_type_seq", "events", ["type", "seq"])
    op.create_index("ix_events_agent_seq", "events", ["agent_id", "seq"])
    op.create_table(
        "agents",
        sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("name", sa.String(256)),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("last_event_id", sa.String(128)),
        sa.Column("last_event_type", sa.String(128)),
        sa.Column("last_seen_at", sa.Float),
        sa.Column("events_applied", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("agents")
    op.drop_table("events")
