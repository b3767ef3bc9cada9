"""Offers nobody answered: one reminder after the reminder delay, "no answer" after twice that.

Run by the periodic job (``helpdesk/jobs/referral_reminders.py``) with the clock's time, by tests with a
time they choose. Each referral moves at most once per step, so a second run (or a second service)
repeats nothing: the reminder stamps ``reminded_at``, "no answer" leaves "offered".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from helpdesk.db.models import Referral
from helpdesk.db.types import utcnow
from helpdesk.desk import Desk
from helpdesk.usecases import events
from helpdesk.usecases.referrals import NO_ANSWER, OFFERED, letter_for, send_letter
from helpdesk.usecases.tickets import audit, desk_note

DEFAULT_REMINDER_DAYS = 5


@dataclass(frozen=True, slots=True)
class ReminderRun:
    reminded: tuple[int, ...]
    no_answer: tuple[int, ...]


async def remind_referrals(desk: Desk, days: int, *, now: datetime | None = None) -> ReminderRun:
    now = now or utcnow()
    delay = timedelta(days=days)
    reminded: list[int] = []
    gave_up: list[int] = []
    async with desk.sessions.begin() as session:
        due = await session.scalars(
            select(Referral)
            .where(Referral.state == OFFERED, Referral.offered_at <= now - delay)
            .order_by(Referral.id)
            .with_for_update(of=Referral)
        )
        for referral in due.unique():
            ticket = referral.ticket
            if referral.offered_at <= now - 2 * delay:
                referral.state = NO_ANSWER
                referral.answered_at = now
                audit(session, ticket, "helpdesk", "referral_no_answer", referral=referral.id)
                # Staff are told on the ticket and its card in the staff group.
                desk_note(
                    session,
                    ticket,
                    f"No answer from expert {referral.expert_id} to referral R{referral.id} after "
                    f"{2 * days} days (reminded once): consider another expert.",
                )
                gave_up.append(referral.id)
            elif referral.reminded_at is None:
                letter = await letter_for(desk, session, referral, "reminder")
                await send_letter(desk, session, referral, letter)
                referral.reminded_at = now
                audit(session, ticket, "helpdesk", "referral_reminded", referral=referral.id)
                reminded.append(referral.id)
            else:
                continue
            await events.record(desk, session, events.ReferralChanged(ticket))
    if reminded or gave_up:
        desk.outbox_written()
    return ReminderRun(tuple(reminded), tuple(gave_up))
