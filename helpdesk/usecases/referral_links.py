"""The one-click answer an expert's offer carries when the web workspace is configured.

Route-free: the web (issue #13, ``helpdesk/web/``) maps ``/referrals/answer/<token>`` to
``answer_by_link`` and shows the line it returns, or the refusal of the ``DeskError`` it raises. The token
is signed, expiring and single-use (``referral_tokens``): a second press, a changed answer or an old link
changes nothing.
"""

from __future__ import annotations

from datetime import datetime

from helpdesk.db.models import Referral
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases import events
from helpdesk.usecases.errors import InvalidTransition
from helpdesk.usecases.referral_tokens import link_key, read_link_token
from helpdesk.usecases.referrals import answer_referral


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
