"""The per-recipient limit on automatic messages (RFC 3834 §2: never flood anyone, a mail loop included)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import AutoReply, Ticket
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.read_ahead import answered_or_read
from helpdesk.usecases.tickets import audit

WINDOW = timedelta(hours=1)

_SENT = select(func.count(AutoReply.id)).where(
    AutoReply.recipient == bindparam("recipient"), AutoReply.created_at >= bindparam("since")
)


def window_start() -> datetime:
    """Automatic mails counted against a recipient's limit are those sent since this moment."""
    return utcnow() - WINDOW


async def allow_auto_reply(
    desk: Desk, session: AsyncSession, recipient: str, ticket: Ticket | None, kind: str
) -> bool:
    """True, and counted, if ``recipient`` may get another automatic mail this hour (counted in the
    database, so several workers and restarts share the limit)."""
    recipient = recipient.lower()
    sent = await answered_or_read(
        session, "auto_replies", recipient, _SENT, {"recipient": recipient, "since": window_start()}
    )
    if (sent or 0) >= desk.mail_ack_limit_per_hour:
        if ticket is not None:
            audit(
                session,
                ticket,
                "helpdesk",
                "auto_reply_suppressed",
                kind=kind,
                recipient=recipient,
                limit_per_hour=desk.mail_ack_limit_per_hour,
            )
        return False
    session.add(AutoReply(recipient=recipient, ticket=ticket, kind=kind))
    return True
