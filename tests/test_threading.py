"""Which ticket an inbound message belongs to: the ordered threading rules, on both channels."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from helpdesk.db.models import Ticket
from helpdesk.desk import Desk
from helpdesk.messages import InboundMessage, Sender
from helpdesk.usecases.receive import receive
from helpdesk.usecases.threading_rules import CANDIDATE_RULES, subject_reference

MAIL_SENDER = Sender(name="Bakhtiyor", email="b.umarov@ecology.uz")
CHAT_SENDER = Sender(name="Aigul", telegram_user_id=501, telegram_chat_id=501)


def _mail(message_id: str, subject: str, text: str = "Please see my question.") -> InboundMessage:
    return InboundMessage(
        channel="email", channel_message_id=message_id, sender=MAIL_SENDER, subject=subject, text=text
    )


def _chat(message_id: int, text: str, **kwargs: object) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        channel_message_id=f"501:{message_id}",
        sender=CHAT_SENDER,
        text=text,
        **kwargs,  # type: ignore[arg-type]
    )


async def _rename(desk: Desk, ticket_id: int, reference: str) -> None:
    async with desk.sessions.begin() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(reference=reference))


async def _two_tickets(desk: Desk, first: InboundMessage, second: InboundMessage) -> None:
    """Two tickets of one requester, renamed to the references of the issue's example."""
    one = await receive(desk, first)
    two = await receive(desk, second)
    assert one.created and two.created
    await _rename(desk, one.ticket_id, "TSCC-2026-0001")
    await _rename(desk, two.ticket_id, "TSCC-2026-0042")


async def test_bracketed_tag_wins_over_a_reference_quoted_in_the_subject(desk: Desk) -> None:
    await _two_tickets(
        desk, _mail("<a@ecology.uz>", "Forest restoration"), _mail("<b@ecology.uz>", "Wetland survey")
    )
    followup = await receive(desk, _mail("<c@ecology.uz>", "Re: about TSCC-2026-0001 [TSCC-2026-0042]"))
    assert (followup.created, followup.reference) == (False, "TSCC-2026-0042")


async def test_bracketed_tag_wins_on_telegram_too(desk: Desk) -> None:
    await _two_tickets(desk, _chat(1, "Forest restoration help"), _chat(2, "Wetland survey", force_new=True))
    followup = await receive(desk, _chat(3, "about TSCC-2026-0001", subject="[TSCC-2026-0042]"))
    assert (followup.created, followup.reference) == (False, "TSCC-2026-0042")


async def test_requesters_explicit_choice_beats_every_other_rule(desk: Desk) -> None:
    await _two_tickets(desk, _chat(1, "Forest restoration help"), _chat(2, "Wetland survey", force_new=True))
    followup = await receive(desk, _chat(3, "see TSCC-2026-0042", continues="TSCC-2026-0001"))
    assert (followup.created, followup.reference) == (False, "TSCC-2026-0001")


async def test_a_stranger_quoting_a_tag_opens_a_new_ticket(desk: Desk) -> None:
    first = await receive(desk, _mail("<a@ecology.uz>", "Forest restoration"))
    stranger = InboundMessage(
        channel="email",
        channel_message_id="<x@elsewhere.example>",
        sender=Sender(name="Someone", email="someone@elsewhere.example"),
        subject=f"Re: [{first.reference}] Forest restoration",
        text="I have a question too.",
    )
    result = await receive(desk, stranger)
    assert result.created and result.reference != first.reference


async def test_chat_open_ticket_is_the_last_rule(desk: Desk) -> None:
    first = await receive(desk, _chat(1, "Forest restoration help"))
    followup = await receive(desk, _chat(2, "One more detail"))
    assert (followup.created, followup.reference) == (False, first.reference)
    async with desk.sessions() as session:
        assert len(list(await session.scalars(select(Ticket)))) == 1


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: about TSCC-2026-0001 [TSCC-2026-0042]", "TSCC-2026-0042"),
        ("Fwd: TSCC-2026-0007 question", "TSCC-2026-0007"),
        ("[ tscc-2026-0042 ]", "TSCC-2026-0042"),
        ("", None),
        (None, None),
    ],
)
def test_subject_reference_prefers_the_tag(subject: str | None, expected: str | None) -> None:
    assert subject_reference(subject) == expected


def test_rules_are_asked_in_their_documented_order() -> None:
    assert [name for name, _ in CANDIDATE_RULES] == [
        "requester's choice",
        "subject tag",
        "subject reference",
        "body reference",
        "In-Reply-To/References",
        "signed reply address",
        "chat's open request",
    ]
