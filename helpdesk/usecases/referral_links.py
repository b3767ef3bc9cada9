"""The one-click answer an expert's offer carries: a link when the web workspace is configured, and on
Telegram a yes and a no to press under the offer (``answer_by_press``).

Route-free: the web (issue #13, ``helpdesk/web/``) maps ``/referrals/answer/<token>`` to
``answer_by_link`` and shows what it recorded, or the refusal of the ``DeskError`` it raises. The token
is signed, expiring and single-use (``referral_tokens``): a second press, a changed answer or an old link
changes nothing. Refusals are names (``REFUSALS``), not sentences: the expert reads the page in their own
language, which the link carries (``referrals.letter_for``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from helpdesk.db.models import Referral
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases import events
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.referral_tokens import EXPIRED, NOT_OURS, link_key, read_link_token
from helpdesk.usecases.referrals import OFFERED, answer_referral, locked_referral

log = logging.getLogger(__name__)

# Long enough for any token the desk makes (id.answer.expiry.mac); anything longer is not read at all.
MAX_TOKEN_CHARS = 64
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

NO_REFERRAL = "no referral"
ANSWERED = "answered"
# Every reason a link is refused for; the page words each of them.
REFUSALS = (NOT_OURS, EXPIRED, NO_REFERRAL, ANSWERED)


@dataclass(frozen=True, slots=True)
class LinkCheck:
    """What a link would do, read without changing anything (the page a GET shows).

    ``refused``: one of ``REFUSALS``. ``gone``: a genuine link that can no longer be used (expired, or the
    referral already answered), as against one the desk never made; the web answers 410 and 400."""

    reference: str | None = None
    answer: str | None = None
    refused: str | None = None
    gone: bool = False


async def check_link(desk: Desk, token: str, *, now: datetime | None = None) -> LinkCheck:
    now = now or utcnow()
    if len(token) > MAX_TOKEN_CHARS:
        return LinkCheck(refused=NOT_OURS)
    async with desk.sessions.begin() as session:
        key = await link_key(session)
        read = read_link_token(key, token, now)
        if isinstance(read, str):
            # Genuine but expired reads as genuine at the start of time.
            return LinkCheck(refused=read, gone=not isinstance(read_link_token(key, token, _EPOCH), str))
        referral_id, answer = read
        referral = await session.get(Referral, referral_id)
        if referral is None:
            return LinkCheck(refused=NO_REFERRAL, gone=True)
        if referral.state != OFFERED:
            return LinkCheck(refused=ANSWERED, gone=True)
        return LinkCheck(reference=referral.ticket.reference, answer=answer)


async def answer_by_link(desk: Desk, token: str, *, now: datetime | None = None) -> LinkCheck:
    """Record the link's answer; what was recorded (reference and answer). Raises ``InvalidTransition``
    naming one of ``REFUSALS``."""
    now = now or utcnow()
    async with desk.sessions.begin() as session:
        read = read_link_token(await link_key(session), token, now)
        if isinstance(read, str):
            raise InvalidTransition(read)
        referral_id, answer = read
        referral = await session.get(Referral, referral_id, with_for_update=True)
        if referral is None:
            raise InvalidTransition(NO_REFERRAL)
        actor = f"expert:{referral.expert_id}"
        if not answer_referral(session, referral, answer, now=now, actor=actor):
            raise InvalidTransition(ANSWERED)
        await events.record(desk, session, events.ReferralChanged(referral.ticket))
    desk.outbox_written()
    return LinkCheck(reference=referral.ticket.reference, answer=answer)


async def answer_by_press(desk: Desk, referral_id: int, telegram_user_id: int, answer: str) -> bool:
    """The expert pressed yes or no under a Telegram offer or reminder; recorded as a link's answer is,
    when the presser is the one the offer went to and the referral still waits for an answer. False
    otherwise: button data is the client's to forge (another user, another referral, a second press)."""
    if answer not in ("yes", "no"):
        return False
    async with desk.sessions.begin() as session:
        found = await locked_referral(session, referral_id)
        if found is None:
            return False
        ticket, referral = found
        if referral.channel != "telegram" or referral.recipient != str(telegram_user_id):
            log.warning(
                "answer button of referral %s pressed by Telegram user %s: not the expert offered",
                referral_id,
                telegram_user_id,
            )
            return False
        if not answer_referral(session, referral, answer, now=utcnow(), actor=f"expert:{referral.expert_id}"):
            return False
        await events.record(desk, session, events.ReferralChanged(ticket))
    desk.outbox_written()
    return True
