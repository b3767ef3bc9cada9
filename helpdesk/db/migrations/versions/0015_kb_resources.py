"""knowledge-base resources kept in the database: added or edited from the workspace

Revision ID: 0015_kb_resources
Revises: 0014_canned_replies
Create Date: 2026-11-30 02:50:30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from helpdesk.db.types import UtcDateTime

revision: str = "0015_kb_resources"
down_revision: str | None = "0014_canned_replies"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kb_resources",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("loaded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_resources")),
    )


def downgrade() -> None:
    op.drop_table("kb_resources")
