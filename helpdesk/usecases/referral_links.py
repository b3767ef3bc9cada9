"""The one-click answer an expert's offer carries when the web workspace is configured.

Route-free: the web (issue #13, ``helpdesk/web/``) maps ``/referrals/answer/<token>`` to
``answer_by_link`` and shows the line it returns, or the refusal of the ``DeskError`` it raises. The token
is signed, expiring and single-use (``referral_tokens``): a second press, a changed answer or an old link
changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from helpdesk.db.models import Referral
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases import events
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.referral_tokens import link_key, read_link_token
from helpdesk.usecases.referrals import OFFERED, answer_referral

# Long enough for any token the desk makes (id.answer.expiry.mac); anything longer is not read at all.
MAX_TOKEN_CHARS = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class LinkCheck:
    """What a link would do, read without changing anything (the page a GET shows).

    ``gone``: a genuine link that can no longer be used (expired, or the referral already answered), as
    against one the desk never made; the web answers 410 and 400."""

    reference: str | None = None
    answer: str | None = None
    refused: str | None = None
    gone: bool = False


async def check_link(desk: Desk, token: str, *, now: datetime | None = None) -> LinkCheck:
    now = now or utcnow()
    if len(token) > MAX_TOKEN_CHARS:
        return LinkCheck(refused="this link is not one the help desk made")
    async with desk.sessions.begin() as session:
        key = await link_key(session)
        read = read_link_token(key, token, now)
        if isinstance(read, str):
            # Genuine but expired reads as genuine at the start of time.
            return LinkCheck(refused=read, gone=not isinstance(read_link_token(key, token, _EPOCH), str))
        referral_id, answer = read
        referral = await session.get(Referral, referral_id)
        if referral is None:
            return LinkCheck(refused="this referral no longer exists", gone=True)
        if referral.state != OFFERED:
            return LinkCheck(refused="this referral was already answered; thank you", gone=True)
        return LinkCheck(reference=referral.ticket.reference, answer=answer)


async def answer_by_link(desk: Desk, token: str, *, now: datetime | None = None) -> str:
    now = now or utcnow()
    async with desk.sessions.begin() as session:
        read = read_link_token(await link_key(session), token, now)
        if isinstance(read, str):
            raise InvalidTransition(read)
        referral_id, answer = read
        referral = await session.get(Referral, referral_id, with_for_update=True)
        if referral is None:
            raise InvalidTransition("this referral no longer exists")
        actor = f"expert:{referral.expert_id}"
        if not answer_referral(session, referral, answer, now=now, actor=actor):
            raise InvalidTransition("this referral was already answered; thank you")
        await events.record(desk, session, events.ReferralChanged(referral.ticket))
    desk.outbox_written()
    return f"Thank you: your answer ({answer}) to {referral.ticket.reference} is recorded."
