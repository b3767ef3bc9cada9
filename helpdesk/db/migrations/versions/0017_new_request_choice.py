"""a Telegram /new kept in the database: the chat's next message opens a ticket, across restarts

A requester's pending choice in a chat (``pending_choices``) may now be one said ahead of any question:
``new_requested_at`` is when they sent /new there, and a row without ``latest_reference`` asks nothing.

Revision ID: 0017_new_request_choice
Revises: 0016_referrals
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import helpdesk.db.types

revision: str = "0017_new_request_choice"
down_revision: str | None = "0016_referrals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pending_choices") as batch_op:
        batch_op.add_column(
            sa.Column("new_requested_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=True)
        )
        batch_op.alter_column("latest_reference", existing_type=sa.String(length=20), nullable=True)


def downgrade() -> None:
    # A /new said ahead of any question has no earlier form: it is dropped.
    op.execute("DELETE FROM pending_choices WHERE latest_reference IS NULL")
    with op.batch_alter_table("pending_choices") as batch_op:
        batch_op.alter_column("latest_reference", existing_type=sa.String(length=20), nullable=False)
        batch_op.drop_column("new_requested_at")
