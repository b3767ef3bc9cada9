"""messages._sentinel: a client-side insert sentinel, so SQLite inserts a group's messages in one statement

SQLAlchemy's multi-row INSERT … RETURNING must hand each new row its id; PostgreSQL orders them by the
identity column, SQLite has no such guarantee and fell back to one INSERT per message. The nullable
integer column numbers the rows of each INSERT on the client (``orm_insert_sentinel``); it means nothing
afterwards.

Revision ID: 0018_message_insert_sentinel
Revises: 0017_new_request_choice
Create Date: 2026-11-30 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_message_insert_sentinel"
down_revision: str | None = "0017_new_request_choice"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases, never a batch copy of the table: on SQLite that would drop the
# search triggers on messages and fail on the view that reads it (0011).
def upgrade() -> None:
    op.add_column("messages", sa.Column("_sentinel", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN _sentinel")
