"""Conversations remember when they were last seen and when they were deleted (undo).

Revision ID: 0002_conversation_marks
Revises: 0001_initial
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_conversation_marks"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_conversations_deleted_at", ["deleted_at"])
    # Replies that landed before this upgrade count as seen: no sidebar full of "new" on the day
    # it is installed. A copied column value keeps each backend's own storage format.
    op.execute(
        "UPDATE conversations SET seen_at = (SELECT max(turns.finished_at) FROM turns"
        " WHERE turns.conversation_id = conversations.id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_index("ix_conversations_deleted_at")
        batch.drop_column("deleted_at")
        batch.drop_column("seen_at")
