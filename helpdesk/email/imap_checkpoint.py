"""The IMAP UID checkpoint of each mailbox, kept in the ``imap_checkpoints`` table."""

from __future__ import annotations

import logging

from sqlalchemy import select

from helpdesk.db.models import ImapCheckpoint
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk

log = logging.getLogger(__name__)


class DatabaseCheckpoint:
    """UIDVALIDITY and the highest committed UID per mailbox (``imap_polling.Checkpoint``)."""

    def __init__(self, desk: Desk) -> None:
        self._desk = desk

    async def load(self, mailbox: str, uidvalidity: int) -> int:
        async with self._desk.sessions.begin() as session:
            row = await session.get(ImapCheckpoint, mailbox)
            if row is None:
                session.add(ImapCheckpoint(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=0))
                return 0
            if row.uidvalidity != uidvalidity:
                log.warning(
                    "IMAP %s: UIDVALIDITY changed from %s to %s; reading the whole mailbox again "
                    "(Message-ID de-duplication keeps tickets single)",
                    mailbox,
                    row.uidvalidity,
                    uidvalidity,
                )
                row.uidvalidity = uidvalidity
                row.last_uid = 0
                row.updated_at = utcnow()
            return row.last_uid

    async def save(self, mailbox: str, uidvalidity: int, uid: int) -> None:
        async with self._desk.sessions.begin() as session:
            row = await session.scalar(
                select(ImapCheckpoint).where(ImapCheckpoint.mailbox == mailbox).with_for_update()
            )
            if row is None:
                session.add(ImapCheckpoint(mailbox=mailbox, uidvalidity=uidvalidity, last_uid=uid))
            elif row.uidvalidity == uidvalidity and uid > row.last_uid:
                row.last_uid = uid
                row.updated_at = utcnow()
