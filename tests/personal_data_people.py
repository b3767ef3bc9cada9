"""The people of the personal-data tests, their history made by the real use-cases, and the trace finder.

Aziza (email; also Cc'd on Bob's ticket, where she writes too; a dead letter from her), Farrukh (Telegram),
and Bob (email), whose data must come through untouched. ``traces`` reads every text, JSON and binary column
of every table in ``Base.metadata`` (new tables are covered by themselves) for a person's name, address,
Telegram id and a phrase only they wrote.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from helpdesk.db.models import AuditEvent, Base, Message, OutboxItem, Ticket
from helpdesk.desk import Desk
from helpdesk.messages import Attachment, InboundMessage, Sender
from helpdesk.reports import Period, build_report
from helpdesk.usecases.dead_letters import store_dead_letter
from helpdesk.usecases.note import add_note
from helpdesk.usecases.receive import receive
from helpdesk.usecases.reclassify import reclassify
from helpdesk.usecases.reply import reply
from helpdesk.usecases.self_service import requester_blocked
from helpdesk.usecases.status import close

AZIZA = Sender(name="Aziza Karimova", email="aziza.karimova@mail.uz")
AZIZA_PHRASE = "quokka-zebra-7781"
FARRUKH = Sender(name="Farrukh Tashkentov", telegram_user_id=987654321, telegram_chat_id=987654321)
FARRUKH_PHRASE = "walrus-okapi-4412"
BOB = Sender(name="Bob Builder", email="bob@ngo.example.org")
BOB_PHRASE = "pangolin-heron-3390"
STAFF = "cli:dilnoza"


def mail(message_id: str, sender: Sender, text: str, subject: str, **kw: Any) -> InboundMessage:
    return InboundMessage(
        channel="email", channel_message_id=message_id, sender=sender, text=text, subject=subject, **kw
    )


async def seed(desk: Desk) -> dict[str, str]:
    """Tickets made by the real use-cases; returns the references."""
    a1 = await receive(
        desk,
        mail(
            "<a1@mail.uz>",
            AZIZA,
            f"Dear Centre, I am Aziza Karimova. We need help with wetland monitoring ({AZIZA_PHRASE}).",
            f"Wetland monitoring {AZIZA_PHRASE}",
            html=f"<p>Aziza Karimova: {AZIZA_PHRASE}</p>",
            attachments=(Attachment("karimova-cv.pdf", "application/pdf", b"%PDF Aziza Karimova CV"),),
            cc=("colleague@example.org",),
        ),
    )
    await reply(desk, a1.reference, "Dear Aziza Karimova, here is our guidance.", actor=STAFF)
    await add_note(desk, a1.reference, f"Aziza called about {AZIZA_PHRASE}", actor=STAFF)
    await reclassify(desk, a1.reference, [11], [2], actor=STAFF)
    await close(desk, a1.reference, actor=STAFF)
    a2 = await receive(
        desk, mail("<a2@mail.uz>", AZIZA, f"Second question {AZIZA_PHRASE} on protected areas", "Protected")
    )
    b1 = await receive(
        desk,
        mail(
            "<b1@ngo>",
            BOB,
            f"We need guidance on OECMs {BOB_PHRASE}",
            "OECM guidance",
            cc=(AZIZA.email,),
        ),
    )
    # Aziza, in Cc, writes on Bob's ticket: a participant's follow-up.
    joined = await receive(
        desk, mail("<a3@mail.uz>", AZIZA, f"Adding to Bob: {AZIZA_PHRASE}", f"Re: [{b1.reference}] OECM")
    )
    assert joined.reference == b1.reference
    await reply(desk, b1.reference, "Dear Bob, see the attached.", actor=STAFF)
    f1 = await receive(
        desk,
        InboundMessage(
            channel="telegram",
            channel_message_id="987654321:10",
            sender=FARRUKH,
            text=f"Нужен эксперт по ДМСО {FARRUKH_PHRASE}",
        ),
    )
    await reply(desk, f1.reference, "Farrukh, an expert will call you.", actor=STAFF)
    await requester_blocked(desk, FARRUKH.telegram_user_id or 0, blocked=True)
    await store_dead_letter(
        desk,
        f"From: Aziza Karimova <{AZIZA.email}>\r\nSubject: {AZIZA_PHRASE}\r\n\r\nbroken".encode(),
        "no text part",
    )
    await store_dead_letter(desk, f"From: {BOB.email}\r\n\r\n{BOB_PHRASE}".encode(), "no text part")
    async with desk.sessions.begin() as session:
        # A suppressed receipt on Bob's ticket names her address (as allow_auto_reply records it).
        bob_ticket = await session.scalar(select(Ticket).where(Ticket.reference == b1.reference))
        assert bob_ticket is not None
        session.add(
            AuditEvent(
                ticket_id=bob_ticket.id,
                actor="helpdesk",
                action="auto_reply_suppressed",
                detail={"kind": "ack", "recipient": AZIZA.email},
            )
        )
        # The delivery worker's part: sent, with Telegram's ids recorded on the messages.
        for item in await session.scalars(select(OutboxItem)):
            item.status = "sent"
            item.sent_at = datetime.now(UTC)
            if item.channel == "telegram":
                item.sent_id = f"{item.payload['recipient']}:{500 + item.id}"
                if item.message_id is not None:
                    await session.execute(
                        update(Message)
                        .where(Message.id == item.message_id, Message.channel_message_id.is_(None))
                        .values(channel_message_id=item.sent_id)
                    )
    # A reply still waiting when she is forgotten: it must never go out.
    await reply(desk, a2.reference, f"Aziza, about {AZIZA_PHRASE}: yes.", actor=STAFF)
    return {"a1": a1.reference, "a2": a2.reference, "b1": b1.reference, "f1": f1.reference}


async def traces(desk: Desk, needles: list[str]) -> list[str]:
    """Every (table.column #row) holding one of `needles`, in any table the models define."""
    found: list[str] = []
    lowered = [n.lower() for n in needles]
    async with desk.sessions() as session:
        connection = await session.connection()
        for table in Base.metadata.sorted_tables:
            for row in (await connection.execute(table.select())).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    if isinstance(value, bytes | bytearray | memoryview):
                        text = bytes(value).decode("utf-8", "replace").lower()
                    elif isinstance(value, dict | list):
                        text = json.dumps(value, ensure_ascii=False).lower()
                    else:
                        text = str(value).lower()
                    for needle in lowered:
                        if needle in text:
                            found.append(f"{table.name}.{column} {dict(row).get('id')}: {needle}")
    return found


def this_month() -> Period:
    now = datetime.now(UTC).astimezone(Period.month("2026-01", "Asia/Tashkent").zone)
    return Period.month(now.strftime("%Y-%m"), "Asia/Tashkent")


async def figures(desk: Desk, now: datetime) -> dict[str, Any]:
    report = await build_report(desk.sessions, this_month(), now=now)
    report.pop("examples")  # quotes of requests: the one part meant to change
    return report


AZIZA_NEEDLES = ["Aziza", "Karimova", AZIZA.email or "", AZIZA_PHRASE]
FARRUKH_NEEDLES = ["Farrukh", "Tashkentov", str(FARRUKH.telegram_user_id), FARRUKH_PHRASE]
BOB_NEEDLES = ["Bob Builder", BOB.email or "", BOB_PHRASE]


async def requester_ticket(desk: Desk, sender: Sender, n: int, text: str) -> str:
    result = await receive(desk, mail(f"<r{n}@x>", sender, text, f"Question {n}"))
    return result.reference


async def set_ticket(
    desk: Desk, reference: str, *, status: str, closed: datetime | None, created: datetime
) -> None:
    async with desk.sessions.begin() as session:
        await session.execute(
            update(Ticket)
            .where(Ticket.reference == reference)
            .values(status=status, closed_at=closed, resolved_at=closed, created_at=created)
        )
