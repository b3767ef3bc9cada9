"""referrals: a ticket offered to an expert of the roster and followed to an answer (issue #14)

Revision ID: 0016_referrals
Revises: 0015_kb_resources
Create Date: 2026-11-30 03:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import helpdesk.db.types

revision: str = "0016_referrals"
down_revision: str | None = "0015_kb_resources"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referrals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("expert_id", sa.String(length=100), nullable=True),
        sa.Column("organisation", sa.String(length=300), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("covering_message", sa.Text(), nullable=True),
        sa.Column("channel_message_id", sa.String(length=1000), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=320), nullable=False),
        sa.Column("offered_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("first_answer_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("consent_asked_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("consent", sa.String(length=8), nullable=True),
        sa.Column("consent_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("introduced_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("cooperation_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("outcome_text", sa.Text(), nullable=True),
        sa.Column("outcome_at", helpdesk.db.types.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name=op.f("fk_referrals_ticket_id_tickets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referrals")),
    )
    op.create_index("ix_referrals_ticket_id", "referrals", ["ticket_id"])
    op.create_index("ix_referrals_expert_id", "referrals", ["expert_id"])
    op.create_index("ix_referrals_state_offered", "referrals", ["state", "offered_at"])
    op.create_index("ix_referrals_recipient_state", "referrals", ["recipient", "state"])


def downgrade() -> None:
    op.drop_index("ix_referrals_recipient_state", table_name="referrals")
    op.drop_index("ix_referrals_state_offered", table_name="referrals")
    op.drop_index("ix_referrals_expert_id", table_name="referrals")
    op.drop_index("ix_referrals_ticket_id", table_name="referrals")
    op.drop_table("referrals")
