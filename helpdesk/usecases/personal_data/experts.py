"""Experts are people too (issue #14 item 6): their referrals, their messages and the roster entry.

``helpdesk requester export|forget --email … | --telegram-id …`` covers an expert as well as a requester:
found by the address or Telegram id their referrals went to. Export lists the referrals, what they wrote
back and the loaded roster entry; forget replaces the address on each referral, erases what they wrote,
and replaces their name and address where the desk quoted them (the introduction sent to a requester).
The roster itself is the Centre's file: an expert leaves it by ``helpdesk kb load`` of a roster without them.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from helpdesk.db.models import Message, Referral, RosterExpert
from helpdesk.usecases.personal_data.person import Identity
from helpdesk.usecases.personal_data.scrub import scrub_message


async def referrals_of(session: AsyncSession, identity: Identity) -> list[Referral]:
    if not identity.recipients:
        return []
    found = await session.scalars(
        select(Referral).where(func.lower(Referral.recipient).in_(identity.recipients)).order_by(Referral.id)
    )
    return list(found.unique())


async def _their_messages(session: AsyncSession, referrals: list[Referral]) -> list[Message]:
    if not referrals:
        return []
    return list(
        await session.scalars(
            select(Message)
            .where(
                Message.ticket_id.in_({r.ticket_id for r in referrals}),
                or_(
                    *(
                        (Message.kind == "expert") & (Message.author == f"expert:{r.expert_id}")
                        for r in referrals
                    )
                ),
            )
            .options(selectinload(Message.attachments))
            .order_by(Message.id)
        )
    )


async def roster_entries(session: AsyncSession, identity: Identity) -> list[dict[str, Any]]:
    rows = await session.scalars(select(RosterExpert.data).order_by(RosterExpert.id))
    return [
        data
        for data in rows
        if str(data.get("email") or "").lower() in identity.emails
        or data.get("telegram_id") in identity.telegram_ids
    ]


async def export_expert(session: AsyncSession, identity: Identity) -> dict[str, Any]:
    referrals = await referrals_of(session, identity)
    return {
        "roster": await roster_entries(session, identity),
        "referrals": [
            {
                "id": r.id,
                "ticket": r.ticket.reference,
                "expert": r.expert_id,
                "organisation": r.organisation,
                "channel": r.channel,
                "recipient": r.recipient,
                "state": r.state,
                "stage": r.stage,
                "offered_at": r.offered_at.isoformat(),
                "answered_at": r.answered_at.isoformat() if r.answered_at else None,
                "introduced_at": r.introduced_at.isoformat() if r.introduced_at else None,
            }
            for r in referrals
        ],
        "expert_messages": [
            {
                "ticket_id": m.ticket_id,
                "subject": m.subject,
                "body": m.body,
                "created_at": m.created_at.isoformat(),
            }
            for m in await _their_messages(session, referrals)
        ],
    }


async def forget_expert(session: AsyncSession, identity: Identity, label: str) -> tuple[int, int]:
    """(referrals, messages) changed: the address on each referral, their messages, the desk's quotes."""
    referrals = await referrals_of(session, identity)
    changed_messages = 0
    for message in await _their_messages(session, referrals):
        changed_messages += scrub_message(message, identity, label)[0]
    names = {str(e.get("name")) for e in await roster_entries(session, identity) if e.get("name")}
    quoted = [re.escape(v) for v in sorted(identity.emails | names)]
    if quoted and referrals:
        pattern = re.compile("|".join(quoted), re.IGNORECASE)
        for message in await session.scalars(
            select(Message).where(
                Message.ticket_id.in_({r.ticket_id for r in referrals}), Message.kind != "expert"
            )
        ):
            if pattern.search(message.body):
                message.body = pattern.sub(label, message.body)
                changed_messages += 1
    for referral in referrals:
        referral.recipient = label
    return len(referrals), changed_messages
