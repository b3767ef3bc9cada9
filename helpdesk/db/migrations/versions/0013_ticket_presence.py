"""ticket presence: who is viewing or replying to a ticket in the web workspace

Revision ID: 0013_ticket_presence
Revises: 0012_staff_accounts
Create Date: 2026-11-30 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from helpdesk.db.types import UtcDateTime

revision: str = "0013_ticket_presence"
down_revision: str | None = "0012_staff_accounts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ticket_presence",
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff_accounts.id"],
            name=op.f("fk_ticket_presence_staff_id_staff_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_ticket_presence_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("staff_id", "ticket_id", name=op.f("pk_ticket_presence")),
    )
    op.create_index(op.f("ix_ticket_presence_ticket_id"), "ticket_presence", ["ticket_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_presence_ticket_id"), table_name="ticket_presence")
    op.drop_table("ticket_presence")
