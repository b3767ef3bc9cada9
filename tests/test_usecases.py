"""The desk's use-cases against SQLite and PostgreSQL: intake, follow-ups, staff actions, audit, outbox."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from helpdesk.db.models import AuditEvent, Message, OutboxItem, Requester, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import Attachment, InboundMessage, Sender
from helpdesk.usecases.assign import assign
from helpdesk.usecases.errors import InvalidTransition, TicketNotFound
from helpdesk.usecases.note import add_note
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reply import reply
from helpdesk.usecases.status import close, set_status
from helpdesk.usecases.tickets import get_ticket

YEAR = datetime.now(UTC).year

ALIYA = Sender(name="Aliya Nurpeisova", email="aliya@eco.gov.kz")
STRANGER = Sender(name="Someone Else", email="other@example.org")
TG_USER = Sender(name="Farrukh", telegram_user_id=5001, telegram_chat_id=5001, language="ru")


def email(
    message_id: str, text: str, *, sender: Sender = ALIYA, subject: str = "OECM guidance", **kw
) -> InboundMessage:
    return InboundMessage(
        channel="email", channel_message_id=message_id, sender=sender, text=text, subject=subject, **kw
    )


def telegram(message_id: int, text: str, *, sender: Sender = TG_USER, **kw) -> InboundMessage:
    return InboundMessage(
        channel="telegram",
        channel_message_id=f"{sender.telegram_chat_id}:{message_id}",
        sender=sender,
        text=text,
        **kw,
    )


async def outbox(desk: Desk) -> list[OutboxItem]:
    async with desk.sessions() as session:
        return list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


async def test_new_email_opens_ticket_and_queues_threaded_acknowledgement(desk: Desk) -> None:
    result = await receive(desk, email("<m1@eco.gov.kz>", "We need guidance on OECM identification."))

    assert result.created and not result.duplicate
    assert result.reference == f"TSCC-{YEAR}-0001"
    async with desk.sessions() as session:
        ticket = await get_ticket(session, result.reference)
    assert ticket.status == "new" and ticket.channel == "email"
    assert ticket.subject == "OECM guidance"
    assert ticket.language == "en"
    assert ticket.classification["targets"][0]["target"] == 3  # OECMs: protected and conserved areas
    assert ticket.classification["source"] == "classifier"
    assert ticket.requester.email == "aliya@eco.gov.kz"
    [item] = await outbox(desk)
    assert item.channel == "email" and item.status == "pending"
    payload = item.payload
    assert payload["recipient"] == "aliya@eco.gov.kz"
    assert payload["subject"] == f"[{result.reference}] Re: OECM guidance"
    assert payload["in_reply_to"] == "<m1@eco.gov.kz>"
    assert payload["references"] == ["<m1@eco.gov.kz>"]
    assert result.reference in payload["text"] and "Aliya" in payload["text"]
    assert payload["message_id"].endswith("@tscc.example.org>")


async def test_russian_request_is_acknowledged_in_russian(desk: Desk) -> None:
    result = await receive(
        desk, email("<ru1@x>", "Просим помочь с методикой оценки эффективности ООПТ.", subject="ООПТ")
    )
    [item] = await outbox(desk)
    assert "зарегистрирован" in item.payload["text"]
    assert result.reference in item.payload["text"]


async def test_same_message_twice_is_one_ticket(desk: Desk) -> None:
    first = await receive(desk, email("<dup@x>", "text"))
    second = await receive(desk, email("<dup@x>", "text"))
    assert second.duplicate and second.reference == first.reference
    async with desk.sessions() as session:
        assert await session.scalar(select(func.count(Ticket.id))) == 1
        assert await session.scalar(select(func.count(Message.id)).where(Message.kind == "inbound")) == 1
    assert len(await outbox(desk)) == 1


async def test_references_are_sequential_per_year(desk: Desk) -> None:
    refs = [(await receive(desk, email(f"<s{i}@x>", f"request {i}"))).reference for i in range(3)]
    assert refs == [f"TSCC-{YEAR}-0001", f"TSCC-{YEAR}-0002", f"TSCC-{YEAR}-0003"]


async def test_email_follow_up_by_subject_tag_joins_ticket(desk: Desk) -> None:
    first = await receive(desk, email("<a@x>", "first"))
    again = await receive(
        desk, email("<b@x>", "more details", subject=f"Re: [{first.reference}] OECM guidance")
    )
    assert not again.created and again.reference == first.reference
    async with desk.sessions() as session:
        ticket = await get_ticket(session, first.reference)
    assert [m.body for m in ticket.messages if m.kind == "inbound"] == ["first", "more details"]
    assert len(await outbox(desk)) == 1  # an emailed follow-up gets no second receipt


async def test_email_follow_up_by_in_reply_to_our_acknowledgement(desk: Desk) -> None:
    first = await receive(desk, email("<a@x>", "first"))
    [ack] = await outbox(desk)
    again = await receive(
        desk, email("<c@x>", "thanks", subject="Re: something", replies_to=(ack.payload["message_id"],))
    )
    assert again.reference == first.reference and not again.created


async def test_forged_tag_from_a_stranger_opens_a_new_ticket(desk: Desk) -> None:
    first = await receive(desk, email("<a@x>", "first"))
    forged = await receive(
        desk, email("<f@y>", "let me in", sender=STRANGER, subject=f"[{first.reference}] hi")
    )
    assert forged.created and forged.reference != first.reference


async def test_telegram_message_continues_open_ticket_until_closed(desk: Desk) -> None:
    first = await receive(desk, telegram(1, "Нужен эксперт по ДМСО"))
    second = await receive(desk, telegram(2, "Это для Каракалпакстана"))
    assert second.reference == first.reference and not second.created
    items = await outbox(desk)
    assert [i.payload["recipient"] for i in items] == ["5001", "5001"]
    assert "зарегистрирован" in items[0].payload["text"]
    assert "Добавлено" in items[1].payload["text"]
    assert items[0].payload["extra"]["reply_to_message_id"] == 1

    await close(desk, first.reference, actor="cli:test")
    third = await receive(desk, telegram(3, "Новый вопрос о финансировании"))
    assert third.created and third.reference != first.reference


async def test_force_new_opens_another_ticket(desk: Desk) -> None:
    first = await receive(desk, telegram(1, "first"))
    second = await receive(desk, telegram(2, "second", force_new=True))
    assert second.created and second.reference != first.reference


async def test_follow_up_reopens_resolved_ticket_but_automatic_mail_does_not(desk: Desk) -> None:
    first = await receive(desk, email("<a@x>", "first"))
    await set_status(desk, first.reference, "resolved", actor="cli:test")
    tag = f"Re: [{first.reference}] OECM guidance"
    auto = await receive(desk, email("<ooo@x>", "I am out of office", subject=tag, automatic=True))
    assert not auto.reopened
    async with desk.sessions() as session:
        assert (await get_ticket(session, first.reference)).status == "resolved"
    again = await receive(desk, email("<b@x>", "it did not work", subject=tag))
    assert again.reopened
    async with desk.sessions() as session:
        ticket = await get_ticket(session, first.reference)
        assert ticket.status == "open" and ticket.resolved_at is None
        actions = list(
            await session.scalars(select(AuditEvent.action).where(AuditEvent.ticket_id == ticket.id))
        )
    assert "reopened" in actions


async def test_automatic_mail_is_stored_without_acknowledgement(desk: Desk) -> None:
    result = await receive(desk, email("<auto@x>", "Automatic reply", automatic=True))
    assert result.created
    assert await outbox(desk) == []
    async with desk.sessions() as session:
        ticket = await get_ticket(session, result.reference)
    assert ticket.messages[0].automatic


async def test_attachments_are_kept(desk: Desk) -> None:
    pdf = Attachment(filename="отчёт.pdf", content_type="application/pdf", data=b"%PDF-1.4 " + b"x" * 1000)
    result = await receive(desk, email("<att@x>", "see attached", attachments=(pdf,)))
    async with desk.sessions() as session:
        ticket = await get_ticket(session, result.reference)
    [attachment] = ticket.messages[0].attachments
    assert attachment.filename == "отчёт.pdf" and attachment.size == 1009 and attachment.data == pdf.data


async def test_staff_reply_goes_to_the_requesters_channel_and_threads(desk: Desk) -> None:
    result = await receive(desk, email("<a@x>", "first"))
    ticket = await reply(desk, result.reference, "Please see the IUCN OECM guidance.", actor="cli:aziza")
    assert ticket.status == "waiting" and ticket.first_response_at is not None
    ack, answer = await outbox(desk)
    assert answer.payload["recipient"] == "aliya@eco.gov.kz"
    assert "Please see the IUCN OECM guidance." in answer.payload["text"]
    assert answer.payload["in_reply_to"] == ack.payload["message_id"]
    assert answer.payload["references"] == ["<a@x>", ack.payload["message_id"]]
    assert answer.payload["subject"].startswith(f"[{result.reference}]")

    tg = await receive(desk, telegram(7, "Hello, I need a PAME expert"))
    await reply(desk, tg.reference, "Here is one.", actor="cli:aziza")
    last = (await outbox(desk))[-1]
    assert last.channel == "telegram" and last.payload["recipient"] == "5001"
    assert tg.reference in last.payload["text"] and "Here is one." in last.payload["text"]


async def test_requester_follow_up_after_staff_reply_moves_waiting_to_open(desk: Desk) -> None:
    result = await receive(desk, telegram(1, "question"))
    await reply(desk, result.reference, "answer", actor="cli:x")
    await receive(desk, telegram(2, "but what about..."))
    async with desk.sessions() as session:
        assert (await get_ticket(session, result.reference)).status == "open"


async def test_note_assign_and_close_are_audited(desk: Desk) -> None:
    result = await receive(desk, email("<a@x>", "first"))
    await add_note(desk, result.reference, "Ask Dilnoza, she knows KBAs", actor="cli:aziza")
    ticket = await assign(desk, result.reference, "dilnoza", actor="cli:aziza")
    assert ticket.status == "open" and ticket.assignee == "dilnoza"
    ticket = await close(desk, result.reference, actor="cli:dilnoza")
    assert ticket.status == "closed" and ticket.closed_at is not None and ticket.resolved_at is not None
    async with desk.sessions() as session:
        events = list(
            await session.scalars(
                select(AuditEvent).where(AuditEvent.ticket_id == ticket.id).order_by(AuditEvent.id)
            )
        )
        note = await session.scalar(select(Message).where(Message.kind == "note"))
    assert [e.action for e in events] == ["created", "classified", "received", "noted", "assigned", "status"]
    assert events[4].detail == {"previous": None, "assignee": "dilnoza"}
    assert events[5].actor == "cli:dilnoza" and events[5].detail == {"previous": "open", "status": "closed"}
    assert note is not None and note.body == "Ask Dilnoza, she knows KBAs"
    assert len(await outbox(desk)) == 1  # a note is never sent


async def test_bad_paths_have_clear_messages(desk: Desk) -> None:
    with pytest.raises(TicketNotFound, match=f"no ticket TSCC-{YEAR}-0099"):
        await reply(desk, f"TSCC-{YEAR}-0099", "hello", actor="cli:x")
    result = await receive(desk, email("<a@x>", "first"))
    await close(desk, result.reference, actor="cli:x")
    with pytest.raises(InvalidTransition, match="already closed"):
        await close(desk, result.reference, actor="cli:x")
    with pytest.raises(InvalidTransition, match="is closed"):
        await reply(desk, result.reference, "late answer", actor="cli:x")
    with pytest.raises(InvalidTransition, match="unknown status"):
        await set_status(desk, result.reference, "pending", actor="cli:x")
    with pytest.raises(InvalidTransition, match="needs some text"):
        await add_note(desk, result.reference, "   ", actor="cli:x")


async def test_requester_is_reused_by_email_case_insensitively(desk: Desk) -> None:
    await receive(desk, email("<a@x>", "one"))
    await receive(
        desk, email("<b@x>", "two", sender=Sender(name="Aliya", email="ALIYA@eco.gov.kz"), subject="other")
    )
    async with desk.sessions() as session:
        assert await session.scalar(select(func.count(Requester.id))) == 1
        assert await session.scalar(select(func.count(Ticket.id))) == 2


async def test_an_edit_with_unstorable_characters_is_stored_cleaned(desk: Desk) -> None:
    """A Telegram edit carrying NUL and a lone surrogate: PostgreSQL refuses NUL in text, so the edit
    is cleaned like a new message instead of failing (found by the Telegram update fuzzer)."""
    from helpdesk.usecases.self_service import edit_message

    await receive(desk, telegram(7, "Нужна консультация по ООПТ"))
    reference = await edit_message(
        desk, "telegram", "5001:7", "Нужна\x00 консультация \ud800по ООПТ", actor="telegram:5001"
    )

    assert reference is not None
    async with desk.sessions() as session:
        body = await session.scalar(
            select(Message.body).where(Message.kind == "inbound", Message.channel_message_id == "5001:7")
        )
    assert body == "Нужна консультация \ufffdпо ООПТ"
