"""the follow-up question and the messages it holds, kept across restarts

Revision ID: 0008_pending_choices
Revises: 0007_intake_limits
Create Date: 2026-11-30 00:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import helpdesk.db.types

revision: str = "0008_pending_choices"
down_revision: str | None = "0007_intake_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "pending_choices",
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_chat_id", sa.BigInteger(), nullable=False),
        sa.Column("latest_reference", sa.String(length=20), nullable=False),
        sa.Column("created_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_pending_choices")),
        sa.UniqueConstraint(
            "telegram_user_id", "telegram_chat_id", name=op.f("uq_pending_choices_telegram_user_id")
        ),
    )
    op.create_index(op.f("ix_pending_choices_created_at"), "pending_choices", ["created_at"])
    op.create_table(
        "pending_choice_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("channel_message_id", sa.String(length=1000), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["token"],
            ["pending_choices.token"],
            name=op.f("fk_pending_choice_messages_token_pending_choices"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_choice_messages")),
        sa.UniqueConstraint("token", "channel_message_id", name=op.f("uq_pending_choice_messages_token")),
    )
    op.create_index(op.f("ix_pending_choice_messages_token"), "pending_choice_messages", ["token"])


def downgrade() -> None:
    op.drop_index(op.f("ix_pending_choice_messages_token"), table_name="pending_choice_messages")
    op.drop_table("pending_choice_messages")
    op.drop_index(op.f("ix_pending_choices_created_at"), table_name="pending_choices")
    op.drop_table("pending_choices")
