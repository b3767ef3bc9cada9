"""Who is asking: one requester row per Telegram user or email address.

Every read of a sender's requester row in intake shares its key lock (``SHARING``): intake of the same
person goes on in parallel, while forgetting them takes the row alone first and so waits for intake in
flight, then holds off the next, instead of crossing its ticket locks (docs/reliability.md, lock order).
"""

from __future__ import annotations

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Requester
from helpdesk.messages import Sender
from helpdesk.usecases.read_ahead import SHARING, answered_or_read

# Built once, bound per call (see read_ahead).
_BY_USER = select(Requester).where(Requester.telegram_user_id == bindparam("user")).with_for_update(**SHARING)
_BY_ADDRESS = (
    select(Requester)
    .where(func.lower(Requester.email) == bindparam("address"))
    .order_by(Requester.id)
    .limit(1)
    .with_for_update(**SHARING)
)


async def find_or_create_requester(session: AsyncSession, sender: Sender, language: str) -> Requester:
    requester: Requester | None = None
    if sender.telegram_user_id is not None:
        user = sender.telegram_user_id
        requester = await answered_or_read(session, "telegram_requester", user, _BY_USER, {"user": user})
    elif sender.email:
        address = sender.email.lower()
        requester = await answered_or_read(session, "requester", address, _BY_ADDRESS, {"address": address})
    if requester is None:
        requester = Requester(
            name=sender.name,
            email=sender.email.lower() if sender.email else None,
            telegram_user_id=sender.telegram_user_id,
            telegram_chat_id=sender.telegram_chat_id,
            language=language,
        )
        session.add(requester)  # written by the caller's next flush, with the ticket that refers to it
        return requester
    # Keep what we know current: people change display names and private chats.
    if sender.name and not requester.name:
        requester.name = sender.name
    if sender.telegram_chat_id is not None and sender.telegram_chat_id == sender.telegram_user_id:
        requester.telegram_chat_id = sender.telegram_chat_id
    return requester
