"""mail intake attempts (a retry budget per message)

Revision ID: 0007_intake_limits
Revises: 0005_reports
Create Date: 2026-11-30 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import helpdesk.db.types

revision: str = "0007_intake_limits"
down_revision: str | None = "0006_mail_trust"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mail_intake_attempts",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_reason", sa.Text(), nullable=False),
        sa.Column("updated_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_mail_intake_attempts")),
    )


def downgrade() -> None:
    op.drop_table("mail_intake_attempts")
