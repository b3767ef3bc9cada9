"""staff accounts: who is staff, for the web workspace, the Telegram group and staff mail

Revision ID: 0012_staff_accounts
Revises: 0011_ticket_search
Create Date: 2026-11-30 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from helpdesk.db.types import UtcDateTime

revision: str = "0012_staff_accounts"
down_revision: str | None = "0011_ticket_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("session_version", sa.Integer(), nullable=False),
        sa.Column("disabled_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_accounts")),
        sa.UniqueConstraint("email", name=op.f("uq_staff_accounts_email")),
        sa.UniqueConstraint("telegram_user_id", name=op.f("uq_staff_accounts_telegram_user_id")),
    )


def downgrade() -> None:
    op.drop_table("staff_accounts")
