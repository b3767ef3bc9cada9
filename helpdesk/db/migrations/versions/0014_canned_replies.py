"""canned replies: staff-managed snippets per language, inserted into a reply from the workspace

Revision ID: 0014_canned_replies
Revises: 0013_ticket_presence
Create Date: 2026-11-30 02:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from helpdesk.db.types import UtcDateTime

revision: str = "0014_canned_replies"
down_revision: str | None = "0013_ticket_presence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=320), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
        sa.UniqueConstraint("language", "title", name=op.f("uq_canned_replies_language")),
    )


def downgrade() -> None:
    op.drop_table("canned_replies")
