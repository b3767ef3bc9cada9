"""Merging two tickets of one requester (both databases): what moves, what stays linked, what is refused,
and that the search index, the classification rows and the expert load follow."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from helpdesk.db.models import AuditEvent, Message, Ticket, TicketParticipant
from helpdesk.desk import Desk
from helpdesk.messages import Attachment, InboundMessage, Sender
from helpdesk.usecases.assign import assign
from helpdesk.usecases.errors import DeskError
from helpdesk.usecases.inbox import InboxCriteria, inbox
from helpdesk.usecases.load import expert_load
from helpdesk.usecases.merge import merge
from helpdesk.usecases.receive import receive
from helpdesk.usecases.tags import add_tag, remove_tag

ACTOR = "web:agent@tscc.example"


async def ticket(desk: Desk, n: int, text: str, email: str = "aliya@eco.gov.kz", **extra: object) -> str:
    inbound = InboundMessage(
        channel="email",
        channel_message_id=f"<merge-{n}@eco.gov.kz>",
        sender=Sender(name="Aliya", email=email),
        subject=f"Request {n}",
        text=text,
        **extra,  # type: ignore[arg-type]
    )
    return (await receive(desk, inbound)).reference


async def found(desk: Desk, words: str) -> list[str]:
    page = await inbox(desk, InboxCriteria(view="all", q=words), response_target_hours=48)
    return [row.reference for row in page.rows]


async def test_merge_moves_the_conversation_and_closes_the_other_with_a_pointer(desk: Desk) -> None:
    survivor = await ticket(desk, 1, "Mangrove restoration in the delta")
    merged = await ticket(
        desk, 2, "Also about wetlands", attachments=(Attachment("map.pdf", "application/pdf", b"%PDF"),)
    )
    async with desk.sessions.begin() as session:
        merged_id = await session.scalar(select(Ticket.id).where(Ticket.reference == merged))
        session.add(TicketParticipant(ticket_id=merged_id, email="colleague@eco.gov.kz"))
    await add_tag(desk, merged, "Urgent", actor=ACTOR)
    await assign(desk, merged, "expert@tscc.example", actor=ACTOR)
    async with desk.sessions() as session:
        assert (await expert_load(session)).get("expert@tscc.example") == 1
    assert await found(desk, "wetlands") == [merged]

    await merge(desk, merged, survivor, actor=ACTOR)

    async with desk.sessions() as session:
        tickets = {t.reference: t for t in await session.scalars(select(Ticket))}
        source, target = tickets[merged], tickets[survivor]
        texts = list(await session.scalars(select(Message.body).where(Message.ticket_id == target.id)))
        assert any("wetlands" in t for t in texts) and any("Mangrove" in t for t in texts)
        left = list(await session.scalars(select(Message).where(Message.ticket_id == source.id)))
        assert [m.kind for m in left] == ["note"] and survivor in left[0].body
        assert source.status == "closed" and target.status == "new"
        assert target.tags == ["urgent"]
        participants = await session.scalars(
            select(TicketParticipant.email).where(TicketParticipant.ticket_id == target.id)
        )
        assert list(participants) == ["colleague@eco.gov.kz"]
        merged_events = await session.scalars(select(AuditEvent).where(AuditEvent.action == "merged"))
        assert {(e.ticket_id, e.actor) for e in merged_events} == {(source.id, ACTOR), (target.id, ACTOR)}
        assert (await expert_load(session)).get("expert@tscc.example") is None  # closed: no longer load
    # The index followed the messages (triggers): the moved words now find the survivor.
    assert await found(desk, "wetlands") == [survivor]


async def test_merge_refuses_other_requesters_itself_and_closed_tickets(desk: Desk) -> None:
    mine = await ticket(desk, 1, "One")
    other = await ticket(desk, 2, "Two", email="someone@else.example")
    second = await ticket(desk, 3, "Three")
    with pytest.raises(DeskError, match="different requesters"):
        await merge(desk, other, mine, actor=ACTOR)
    with pytest.raises(DeskError, match="into itself"):
        await merge(desk, mine, mine.lower(), actor=ACTOR)
    with pytest.raises(DeskError, match="no ticket"):
        await merge(desk, "TSCC-2026-9999", mine, actor=ACTOR)
    await merge(desk, second, mine, actor=ACTOR)
    with pytest.raises(DeskError, match="is closed"):
        await merge(desk, second, mine, actor=ACTOR)  # merged once: never twice
    with pytest.raises(DeskError, match="is closed"):
        await merge(desk, mine, second, actor=ACTOR)
    async with desk.sessions() as session:
        counts = dict(
            (await session.execute(select(Message.ticket_id, func.count()).group_by(Message.ticket_id))).all()
        )
        assert sum(counts.values()) >= 4  # nothing lost: three requests and the pointer note


async def test_tags_are_normalised_bounded_and_audited(desk: Desk) -> None:
    reference = await ticket(desk, 1, "One")
    await add_tag(desk, reference, " Funding ", actor=ACTOR)
    await add_tag(desk, reference, "funding", actor=ACTOR)  # once
    for bad in ("", "<script>", "a" * 41, "two words"):
        with pytest.raises(DeskError, match="a tag is"):
            await add_tag(desk, reference, bad, actor=ACTOR)
    await remove_tag(desk, reference, "FUNDING", actor=ACTOR)
    async with desk.sessions() as session:
        t = await session.scalar(select(Ticket).where(Ticket.reference == reference))
        assert t is not None and t.tags == []
        actions = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.ticket_id == t.id)))
        assert actions.count("tagged") == 1 and actions.count("untagged") == 1


async def test_a_follow_up_quoting_the_merged_reference_reaches_the_survivor(desk: Desk) -> None:
    survivor = await ticket(desk, 1, "Mangrove restoration")
    merged = await ticket(desk, 2, "Wetland mapping")
    await merge(desk, merged, survivor, actor=ACTOR)
    follow_up = InboundMessage(
        channel="email",
        channel_message_id="<merge-9@eco.gov.kz>",
        sender=Sender(name="Aliya", email="aliya@eco.gov.kz"),
        subject=f"Re: [{merged}] Request 2",
        text="Any news on the wetland maps?",
    )
    assert (await receive(desk, follow_up)).reference == survivor
    async with desk.sessions() as session:
        statuses = dict((await session.execute(select(Ticket.reference, Ticket.status))).all())
    assert statuses[merged] == "closed"  # not reopened by the old reference
