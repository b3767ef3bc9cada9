"""What referrals add to an expert's load in the matcher (issue #14 item 5).

An open referral (offered, or accepted and no outcome yet) counts as an open ticket, so an expert who holds
``max_open_tickets`` between tickets and referrals is full. A recent decline or silence weighs for a while
as extra open tickets: the expert ranks lower, and is left out only when that weight fills them up.
The weights and how long they last are the data below, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.db.models import Referral
from helpdesk.db.types import utcnow
from helpdesk.usecases.load import expert_load
from helpdesk.usecases.referrals import DECLINED, NO_ANSWER, OPEN


@dataclass(frozen=True, slots=True)
class Penalty:
    weight: int  # counted as this many open tickets
    lasts: timedelta  # from the answer (or the "no answer" verdict)


PENALTIES: dict[str, Penalty] = {
    DECLINED: Penalty(weight=1, lasts=timedelta(days=30)),
    NO_ANSWER: Penalty(weight=2, lasts=timedelta(days=60)),
}


async def matching_load(session: AsyncSession, *, now: datetime | None = None) -> dict[str, int]:
    """The matcher's load: open tickets (``expert_load``), open referrals, and recent refusals' weight."""
    now = now or utcnow()
    weight = case(
        (OPEN, 1),
        *(
            (and_(Referral.state == state, Referral.answered_at >= now - penalty.lasts), penalty.weight)
            for state, penalty in PENALTIES.items()
        ),
        else_=0,
    )
    # Only rows that can weigh: the open ones and the recent refusals, not the whole history.
    longest = max(penalty.lasts for penalty in PENALTIES.values())
    rows = await session.execute(
        select(Referral.expert_id, func.sum(weight))
        .where(Referral.expert_id.is_not(None), or_(OPEN, Referral.answered_at >= now - longest))
        .group_by(Referral.expert_id)
    )
    load = dict(await expert_load(session))
    for expert, extra in rows.all():
        if extra:
            load[expert] = load.get(expert, 0) + int(extra)
    return load
