"""Drills (`understudy drill`, web.drills) and the turns they made (turns.drill_id).

Revision ID: 0004_drills
Revises: 0003_deferral
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_drills"
down_revision: str | None = "0003_deferral"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    when = sa.DateTime(timezone=True)
    op.create_table(
        "drills",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("scenario", sa.String(64), nullable=False),
        sa.Column("faults", sa.Text(), nullable=False),
        sa.Column("instance_wide", sa.Boolean(), nullable=False),
        sa.Column("started_at", when, nullable=False),
        sa.Column("expires_at", when, nullable=False),
        sa.Column("ended_at", when, nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("markdown", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_drills"),
    )
    op.create_index("ix_drills_started_at", "drills", ["started_at"])
    with op.batch_alter_table("turns") as batch:
        batch.add_column(sa.Column("drill_id", sa.String(32), nullable=True))
        batch.create_foreign_key(
            "fk_turns_drill_id_drills", "drills", ["drill_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_turns_drill_id", ["drill_id"])


def downgrade() -> None:
    with op.batch_alter_table("turns") as batch:
        batch.drop_index("ix_turns_drill_id")
        batch.drop_constraint("fk_turns_drill_id_drills", type_="foreignkey")
        batch.drop_column("drill_id")
    op.drop_index("ix_drills_started_at", table_name="drills")
    op.drop_table("drills")
