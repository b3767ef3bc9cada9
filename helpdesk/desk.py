"""What every use-case needs: the database, the clock's time zone, and the help desk's identity."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.composer import ChannelComposer, UnknownChannel
from helpdesk.flood import FloodLimits

if TYPE_CHECKING:
    from helpdesk.handoff import CarryMarks, HandOff
    from helpdesk.triage import Triage


@dataclass
class Desk:
    sessions: async_sessionmaker[AsyncSession]
    mail_from: str | None = None
    # HELPDESK_STAFF_EMAILS, a seed: who is staff is usecases/staff_directory.py's answer (accounts first).
    staff_emails: frozenset[str] = frozenset()
    # Language of the mail the desk writes to staff (HELPDESK_REPORT_LANGUAGE, like the monthly report).
    staff_mail_language: str = "ru"
    # Acknowledgements and notices by email, per recipient per hour (RFC 3834 §2: do not flood a sender).
    mail_ack_limit_per_hour: int = 5
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Tashkent"))
    # The staff Telegram group: each ticket's card is posted (and kept current) there through the outbox.
    staff_telegram_chat_id: int | None = None
    # Called after a transaction put something in the outbox, so a worker in this process sends it at once.
    outbox_written: Callable[[], None] = lambda: None
    # The delivery worker of this process taking a receipt straight from the intake, unclaimed
    # (helpdesk/handoff.py; wired by helpdesk.service.connect). None: receipts wait for a worker's claim.
    hand_off: HandOff | None = None
    # SQLite: the worker's marks of sends, carried by the intake's transaction (helpdesk/mark_carrier.py;
    # wired by helpdesk.service.connect). None: the worker writes them itself.
    carry_marks: CarryMarks | None = None
    # Per-requester limits on Telegram floods (open tickets, receipts, card refreshes).
    limits: FloodLimits = field(default_factory=FloodLimits)
    # Classifier + matcher with the staff's corrections; rebuilt when the database says they changed.
    triage: Triage | None = None
    triage_key: Any = None
    # How each channel words and addresses what the desk says on it (helpdesk.service.standard_composers).
    composers: Mapping[str, ChannelComposer] = field(default_factory=dict)

    def composer(self, channel: str) -> ChannelComposer:
        try:
            return self.composers[channel]
        except KeyError:
            raise UnknownChannel(channel) from None

    # HELPDESK_WEB_BASE_URL: staff cards and notification mails link to the ticket's page when it is set.
    web_base_url: str | None = None

    def ticket_url(self, reference: str) -> str | None:
        return f"{self.web_base_url}/tickets/{quote(reference, safe='')}" if self.web_base_url else None

    @property
    def mail_domain(self) -> str:
        return self.mail_from.rpartition("@")[2] if self.mail_from else "tscc-helpdesk.invalid"
