"""intake indexes: every look-up on the intake and delivery paths served by an index

Revision ID: 0009_intake_indexes
Revises: 0008_pending_choices
Create Date: 2026-11-30 01:00:00

Measured with bench/bench_scale.py (bench/bench_scale.md): at 100,000 tickets these statements read whole
tables before this revision.
- messages (channel_message_id, channel): the duplicate check (channel + channel_message_id) and the
  In-Reply-To/References look-up (channel_message_id IN (...)); the unique constraint starts with
  (channel, kind), so neither could use it beyond the channel.
- requesters lower(email): the requester look-up compares lower(email); a plain index on email cannot serve
  it, and no statement compares email as stored, so that index goes.
- tickets (status, assignee): the expert load counts active tickets per assignee; it replaces the index on
  status alone, which it serves as its leading column.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_intake_indexes"
down_revision: str | None = "0008_pending_choices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_messages_channel_message_id", "messages", ["channel_message_id", "channel"])
    op.create_index("ix_requesters_email_lower", "requesters", [sa.text("lower(email)")])
    op.drop_index("ix_requesters_email", table_name="requesters")
    op.create_index("ix_tickets_status_assignee", "tickets", ["status", "assignee"])
    op.drop_index("ix_tickets_status", table_name="tickets")


def downgrade() -> None:
    op.create_index("ix_tickets_status", "tickets", ["status"])
    op.drop_index("ix_tickets_status_assignee", table_name="tickets")
    op.create_index("ix_requesters_email", "requesters", ["email"])
    op.drop_index("ix_requesters_email_lower", table_name="requesters")
    op.drop_index("ix_messages_channel_message_id", table_name="messages")
