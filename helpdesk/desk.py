"""What every use-case needs: the database, the clock's time zone, and the help desk's identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


@dataclass
class Desk:
    sessions: async_sessionmaker[AsyncSession]
    mail_from: str | None = None
    staff_emails: frozenset[str] = frozenset()
    # Acknowledgements and notices by email, per recipient per hour (RFC 3834 §2: do not flood a sender).
    mail_ack_limit_per_hour: int = 5
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Tashkent"))
    # Called after a transaction put something in the outbox, so a worker in this process sends it at once.
    outbox_written: Callable[[], None] = lambda: None

    @property
    def mail_domain(self) -> str:
        return self.mail_from.rpartition("@")[2] if self.mail_from else "tscc-helpdesk.invalid"
