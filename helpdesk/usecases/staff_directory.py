"""Who is staff, the one answer for the web, the Telegram group and staff mail.

Staff accounts (helpdesk/usecases/staff_accounts.py) are the source. HELPDESK_STAFF_EMAILS and
HELPDESK_STAFF_TELEGRAM_IDS (``Desk.staff_emails``, the bot's ``staff_ids``) still count, as a seed, so a
desk configured before accounts existed keeps working: an address or id listed there is staff unless an
account with that address or id is disabled. A disabled account is staff nowhere, whatever the variables
say. Read from the database on each question, so disabling takes effect at once in every process.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import StaffAccount
from helpdesk.desk import Desk


async def staff_emails(desk: Desk, session: AsyncSession) -> frozenset[str]:
    rows = (await session.execute(select(StaffAccount.email, StaffAccount.disabled_at))).all()
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
