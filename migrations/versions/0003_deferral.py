"""Deferred jobs (queued turns, web.deferral) and "Ask Sonnet again" (turns.upgrade_of).

Revision ID: 0003_deferral
Revises: 0002_conversation_marks
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_deferral"
down_revision: str | None = "0002_conversation_marks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "deferred_jobs",
        sa.Column("turn_id", sa.String(32), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("queued_at", when, nullable=False),
        sa.Column("expires_at", when, nullable=False),
        sa.Column("next_at", when, nullable=False),
        sa.Column("lease_until", when, nullable=True),
        sa.Column("leased_by", sa.String(64), nullable=True),
        sa.Column("batch_id", sa.String(128), nullable=True),
        sa.Column("submitted_at", when, nullable=True),
        sa.Column("submissions", sa.Integer(), nullable=False),
        sa.Column("polls", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("finished_at", when, nullable=True),
        sa.ForeignKeyConstraint(
            ["turn_id"],
            ["turns.id"],
            name="fk_deferred_jobs_turn_id_turns",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("turn_id", name="pk_deferred_jobs"),
    )
    op.create_index("ix_deferred_jobs_state_next", "deferred_jobs", ["state", "next_at"])
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("upgrade_of", sa.String(32), nullable=True))
        batch.create_foreign_key(
            "fk_turns_upgrade_of_turns", "turns", ["upgrade_of"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_constraint("fk_turns_upgrade_of_turns", type_="foreignkey")
        batch.drop_column("upgrade_of")
    op.drop_index("ix_deferred_jobs_state_next", table_name="deferred_jobs")
    op.drop_table("deferred_jobs")
