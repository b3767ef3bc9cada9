"""Dead letters: inbound mail that could not become a ticket, kept raw with the reason.

Once a message is here it is safe, so intake may mark it seen on the server; staff look at it with
`helpdesk mail dead-letters list|show` and `retry` it once the cause is fixed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from helpdesk.db.models import DeadLetter
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases.errors import DeskError

REASON_LIMIT = 4000


class DeadLetterNotFound(DeskError):
    """No dead letter with this id."""

    def __init__(self, letter_id: int) -> None:
        super().__init__(f"no dead letter {letter_id}")
        self.letter_id = letter_id


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    id: int
    new: bool  # False: the same bytes were already waiting, their attempt count went up


async def store_dead_letter(
    desk: Desk, raw: bytes, reason: str, *, source: str | None = None, source_uid: int | None = None
) -> StoredDeadLetter:
    """Keep ``raw`` with ``reason``; the same bytes twice (a crash before marking seen) are one row."""
    digest = hashlib.sha256(raw).hexdigest()
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
            size=len(raw),
            reason=reason[:REASON_LIMIT],
        )
        session.add(letter)
        await session.flush()
        return StoredDeadLetter(letter.id, new=True)


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
