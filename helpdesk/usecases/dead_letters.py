"""Dead letters: inbound mail that could not become a ticket, kept raw with the reason.

Once a message is here it is safe, so intake may mark it seen on the server; staff look at it with
`helpdesk mail dead-letters list|show` and `retry` it once the cause is fixed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from helpdesk.db.models import DeadLetter, IntakeAttempt, OutboxItem
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.messages import OutboundMessage
from helpdesk.outbox import new_message_id
from helpdesk.rendering import render
from helpdesk.usecases.auto_replies import allow_auto_reply
from helpdesk.usecases.errors import DeskError

REASON_LIMIT = 4000
# Said in the reason of a dead letter that keeps only its first bytes (mail over a limit).
CUT_MARK = "[raw cut: first"


class DeadLetterNotFound(DeskError):
    """No dead letter with this id."""

    def __init__(self, letter_id: int) -> None:
        super().__init__(f"no dead letter {letter_id}")
        self.letter_id = letter_id


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: int
    new: bool  # False: the same bytes were already waiting, their attempt count went up
    notified: bool = False  # the sender was sent a notice (in the same transaction)


@dataclass(frozen=True, slots=True)
class RejectionNotice:
    """Telling the sender of refused mail why (once): where to, in which language, answering what."""

    recipient: str
    language: str
    in_reply_to: str | None = None
    size: str | None = None  # "62.3 MB": set when the size was the reason
    limit: str | None = None


_NOTICE_SUBJECTS = {
    "en": "Your message to the TSCC Help Desk was not accepted",
    "ru": "Ваше письмо в Справочную службу TSCC не принято",
}


async def store_dead_letter(
    desk: Desk,
    raw: bytes,
    reason: str,
    *,
    source: str | None = None,
    source_uid: int | None = None,
    original_size: int | None = None,
    notice: RejectionNotice | None = None,
) -> StoredDeadLetter:
    """Keep ``raw`` with ``reason``; the same bytes twice (a crash before marking seen) are one row.

    ``original_size`` larger than ``raw`` means only the first bytes were kept (said in the reason).
    ``notice`` is queued for the sender with the new row only, so a re-fetch never tells them twice,
    and within the per-recipient limit on automatic mail.
    """
    digest = hashlib.sha256(raw).hexdigest()
    size = max(original_size or 0, len(raw))
    if size > len(raw):
        reason = f"{CUT_MARK} {len(raw)} of {size} bytes kept] {reason}"
    async with desk.sessions.begin() as session:
        existing = await session.scalar(
            select(DeadLetter).where(DeadLetter.sha256 == digest, DeadLetter.status == "new").limit(1)
        )
        if existing is not None:
            existing.attempts += 1
            existing.reason = reason[:REASON_LIMIT]
            return StoredDeadLetter(existing.id, new=False)
        letter = DeadLetter(
            channel="email",
            source=source,
            source_uid=source_uid,
            sha256=digest,
            raw=raw,
            size=size,
            reason=reason[:REASON_LIMIT],
        )
        session.add(letter)
        await session.flush()
        notified = False
        if notice is not None and await allow_auto_reply(desk, session, notice.recipient, None, "rejected"):
            session.add(_notice_item(desk, notice))
            notified = True
    if notified:
        desk.outbox_written()
    return StoredDeadLetter(letter.id, new=True, notified=notified)


def _notice_item(desk: Desk, notice: RejectionNotice) -> OutboxItem:
    language = notice.language if notice.language in _NOTICE_SUBJECTS else "en"
    outbound = OutboundMessage(
        channel="email",
        recipient=notice.recipient,
        subject=_NOTICE_SUBJECTS[language],
        text=render("email/rejected.{lang}.txt.j2", language, size=notice.size, limit=notice.limit),
        message_id=new_message_id(desk.mail_domain),
        in_reply_to=notice.in_reply_to,
        references=(notice.in_reply_to,) if notice.in_reply_to else (),
        extra={"auto_submitted": "auto-replied"},
    )
    return OutboxItem(ticket_id=None, message_id=None, channel="email", payload=outbound.to_json())


async def count_failed_attempt(desk: Desk, digest: str, reason: str) -> int:
    """One more temporary failure to receive the mail with this content hash; returns the count so far."""
    async with desk.sessions.begin() as session:
        row = await session.get(IntakeAttempt, digest, with_for_update=True)
        if row is None:
            row = IntakeAttempt(sha256=digest, attempts=0, last_reason="")
            session.add(row)
        row.attempts += 1
        row.last_reason = reason[:REASON_LIMIT]
        return row.attempts


async def forget_failed_attempts(desk: Desk, digest: str) -> None:
    async with desk.sessions.begin() as session:
        await session.execute(delete(IntakeAttempt).where(IntakeAttempt.sha256 == digest))


async def list_dead_letters(desk: Desk, *, include_resolved: bool = False) -> list[dict[str, Any]]:
    query = select(DeadLetter).order_by(DeadLetter.id.desc())
    if not include_resolved:
        query = query.where(DeadLetter.status == "new")
    async with desk.sessions() as session:
        return [summary(letter) for letter in await session.scalars(query)]


async def get_dead_letter(desk: Desk, letter_id: int) -> DeadLetter:
    async with desk.sessions() as session:
        letter = await session.get(DeadLetter, letter_id)
    if letter is None:
        raise DeadLetterNotFound(letter_id)
    return letter


async def record_retry(desk: Desk, letter_id: int, *, reference: str | None, reason: str | None) -> None:
    """After a retry: resolved with the ticket it became, or still dead with the new reason."""
    async with desk.sessions.begin() as session:
        letter = await session.get(DeadLetter, letter_id)
        if letter is None:
            raise DeadLetterNotFound(letter_id)
        letter.attempts += 1
        if reference is not None:
            letter.status = "resolved"
            letter.ticket_reference = reference
            letter.resolved_at = utcnow()
        elif reason is not None:
            letter.reason = reason[:REASON_LIMIT]


def is_cut(letter: DeadLetter) -> bool:
    """Only the first bytes were kept: retrying cannot make a ticket of it."""
    return letter.reason.startswith(CUT_MARK)


def summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "status": letter.status,
        "received_at": letter.created_at.isoformat(),
        "size": letter.size,
        "source": letter.source,
        "source_uid": letter.source_uid,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "ticket": letter.ticket_reference,
        "sha256": letter.sha256,
    }
