"""Processes that serve the app (heartbeats with a lease, web.processes) and which one runs
each live turn (turns.process_id), so a survivor can interrupt a dead process's turns.

Revision ID: 0005_processes
Revises: 0004_drills
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_processes"
down_revision: str | None = "0004_drills"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "processes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", when, nullable=False),
        sa.Column("beat_at", when, nullable=False),
        sa.Column("lease_until", when, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_processes"),
    )
    op.create_index("ix_processes_lease_until", "processes", ["lease_until"])
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("process_id", sa.String(32), nullable=True))
        batch.create_index("ix_turns_process_id", ["process_id"])


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_index("ix_turns_process_id")
        batch.drop_column("process_id")
    op.drop_index("ix_processes_lease_until", table_name="processes")
    op.drop_table("processes")
