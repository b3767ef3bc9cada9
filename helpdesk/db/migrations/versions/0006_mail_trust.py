"""mail trust: desk secrets (signed reply addresses) and unverified messages

Revision ID: 0006_mail_trust
Revises: 0005_reports
Create Date: 2026-11-29 23:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import helpdesk.db.types

revision: str = "0006_mail_trust"
down_revision: str | None = "0005_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=200), nullable=False),
        sa.Column("created_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_desk_secrets")),
    )
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("unverified", sa.Boolean(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("unverified")
    op.drop_table("desk_secrets")
