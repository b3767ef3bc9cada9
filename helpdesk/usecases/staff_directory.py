"""Who is staff, the one answer for the web, the Telegram group and staff mail.

Staff accounts (helpdesk/usecases/staff_accounts.py) are the source. HELPDESK_STAFF_EMAILS and
HELPDESK_STAFF_TELEGRAM_IDS (``Desk.staff_emails``, the bot's ``staff_ids``) still count, as a seed, so a
desk configured before accounts existed keeps working: an address or id listed there is staff unless an
account with that address or id is disabled. A disabled account is staff nowhere, whatever the variables
say. Read from the database on each question, so disabling takes effect at once in every process.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import StaffAccount
from helpdesk.db.transaction_memo import once_per_transaction
from helpdesk.desk import Desk


async def staff_emails(desk: Desk, session: AsyncSession) -> frozenset[str]:
    # Asked several times per mail (the sender's role, participants, notifications), and per mail of a
    # batch: read once per transaction, which is also where an account change would commit.
    rows = await once_per_transaction(
        session,
        "staff_email_rows",
        lambda: _rows(session, select(StaffAccount.email, StaffAccount.disabled_at)),
    )
    enabled = {email for email, disabled_at in rows if disabled_at is None}
    disabled = {email for email, disabled_at in rows if disabled_at is not None}
    return frozenset(enabled | (desk.staff_emails - disabled))


async def staff_telegram_ids(session: AsyncSession, seed: frozenset[int]) -> frozenset[int]:
    rows = (
        await session.execute(
            select(StaffAccount.telegram_user_id, StaffAccount.disabled_at).where(
                StaffAccount.telegram_user_id.is_not(None)
            )
        )
    ).all()
    enabled = {user_id for user_id, disabled_at in rows if disabled_at is None}
    disabled = {user_id for user_id, disabled_at in rows if disabled_at is not None}
    return frozenset(enabled | (seed - disabled))


async def _rows(session: AsyncSession, query: Select[Any]) -> list[Any]:
    return list((await session.execute(query)).all())
